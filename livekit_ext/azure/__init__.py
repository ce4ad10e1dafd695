"""Azure realtime: ``input_audio_transcription=None`` / ``turn_detection=None`` mean *off*.

Users who run their own STT or turn detection turn the model's off. Upstream gets this
wrong on Azure in several release-specific ways, each fixed here by wrapping the upstream
function where the ``None`` is lost:

- 1.4.x: ``with_azure`` always builds the preview (Beta) model, which rejects ``None``; GA
  api-versions (and no api-version at all) are routed to the GA model, and preview
  api-versions accept ``None``. Without an api-version the GA model connects to
  ``/openai/v1/realtime?model=<deployment>``, as later releases do.
- 1.4.x: the GA session re-sends every audio-input setting on each ``update_options``, so
  settings the user did not touch go out again (as ``null`` when unset); only what the
  caller gave is forwarded.
- 1.5.x and later, with an ``api_version`` (the legacy flat wire shape): the conversion to
  the flat shape drops ``None``, so Azure keeps its defaults; a user-requested ``None``
  becomes an explicit ``null`` again.
- 1.5.1 and 1.5.2: every Azure ``session.update`` is flattened, also without an api-version,
  where the endpoint (``/openai/v1/realtime``) speaks GA; there upstream builds the GA shape,
  as it does from 1.5.3 on.
- up to 1.7.x: ``update_options(input_audio_transcription=...)`` leaves
  ``capabilities.user_transcription`` stale; it follows the option (as 1.8 does natively).
- 1.5.1 to 1.5.6: a session keeps no options of its own and diffs ``update_options`` against
  its model's, which the model has already updated when it forwards the call: a mid-session
  ``model.update_options(input_audio_transcription=None)`` sends no ``session.update`` at all.
  For the call, the session sees the settings the caller gave as they were before it.

The GA shape without an api-version already sends explicit nulls; it is left alone.
"""

from __future__ import annotations

from .. import _touchpoints as tp
from .._engine import Feature, FeatureStatus, Probe
from .._wrapping import Patcher
from . import wrappers
from .probes import Plugin, gaps
from .wire import is_ga_api_version
from .wrappers import FEATURE

__all__ = ["FEATURE", "AzureExplicitNulls", "gaps", "is_ga_api_version"]

WITH_AZURE = tp.wrap(
    "route GA/no api-version to the GA model, keep None",
    f"{tp.OPENAI_PLUGIN}:RealtimeModel.with_azure",
)
PROCESS_BASE_URL = tp.replace(
    "Azure without api-version: /openai/v1/realtime?model=",
    *(f"{module}:process_base_url" for module in tp.OPENAI_ENGINES),
)
SESSION_UPDATE_EVENT = tp.wrap(
    "the legacy flat session.update keeps explicit nulls; 1.5.1-1.5.2 (the probe reads "
    "whether it looks at api_version) flatten without an api-version too: GA shape there",
    *tp.engine("RealtimeSession._wrap_session_update"),
    optional=True,
)
MODEL_UPDATE_OPTIONS = tp.wrap(
    "remember what the caller gave; capabilities follow",
    f"{tp.OPENAI_PLUGIN}:RealtimeModel.update_options",
)
BETA_MODEL_UPDATE_OPTIONS = tp.wrap(
    "1.4 preview model: capabilities follow update_options",
    f"{tp.OPENAI_BETA}:RealtimeModelBeta.update_options",
    optional=True,
)
SESSION_UPDATE_OPTIONS = tp.wrap(
    "1.4: send only the settings the caller gave", *tp.engine("RealtimeSession.update_options")
)
SESSION_OPTIONS = tp.attr(
    "the options a session diffs update_options against, its own from 1.5.7; without them "
    "(1.5.1-1.5.6) it diffs against its model's, which the wrapper rewinds for the call",
    *tp.engine("RealtimeSession._opts"),
    optional=True,
)
SESSION_INIT = tp.read(
    "probe: does the session's constructor give it options of its own (self._opts)",
    *tp.engine("RealtimeSession.__init__"),
)
SESSION_MODEL = tp.attr(
    "the model whose options a session without its own reads (1.5.1-1.5.6)",
    *tp.engine("RealtimeSession._realtime_model"),
)
MODEL_OPTIONS = tp.attr("the model's options (None means off)", *tp.engine("RealtimeModel._opts"))
CAPABILITIES = tp.attr(
    "the model's capabilities (user_transcription, turn_detection)",
    *tp.engine("RealtimeModel._capabilities"),
)
FLAT_CONVERTER = tp.call(
    "probe: does upstream's flat conversion keep an explicit None",
    *(f"{module}:_oai_session_to_azure" for module in tp.OPENAI_ENGINES),
    optional=True,
)


# -- the feature ------------------------------------------------------------------------------


class AzureExplicitNulls(Feature):
    name = FEATURE
    description = (
        "with_azure(..., input_audio_transcription=None / turn_detection=None) works on GA and "
        "preview api-versions and sends explicit nulls on the wire"
    )
    trigger = "livekit.plugins.openai"
    distribution = "livekit-plugins-openai"
    touchpoints = tp.declared(globals())

    def probe(self) -> Probe:
        try:
            Plugin.load()
        except ImportError as e:
            return Probe("unsupported", f"livekit-plugins-openai realtime is not importable: {e}")
        return Probe("patchable", "wrappers act only where the installed release loses a None")

    def install(self, patcher: Patcher) -> None:
        """Wrap every place a ``None`` can be lost; each wrapper acts only for a real gap."""
        plugin = Plugin.load()  # the classes the plugin exports, wherever they are defined
        patcher.wrap(WITH_AZURE, wrappers.with_azure, on=plugin.model)
        patcher.wrap_function(PROCESS_BASE_URL, wrappers.azure_v1_url, on=plugin.engine)
        if hasattr(plugin.session, SESSION_UPDATE_EVENT.name):
            patcher.wrap(SESSION_UPDATE_EVENT, wrappers.flat_session_update, on=plugin.session)
        patcher.wrap(MODEL_UPDATE_OPTIONS, wrappers.model_update_options, on=plugin.model)
        if plugin.beta_model is not None:
            patcher.wrap(
                BETA_MODEL_UPDATE_OPTIONS, wrappers.model_update_options, on=plugin.beta_model
            )
        patcher.wrap(SESSION_UPDATE_OPTIONS, wrappers.session_update_options, on=plugin.session)

    def settle(self, applied: FeatureStatus) -> FeatureStatus:
        """Native when the installed release has none of the gaps, applied or not (the probe
        is behaviour, run on first use); else, once applied, what the wrappers fix."""
        found = gaps()
        if not found.any:
            return FeatureStatus(
                "native",
                "with_azure accepts None on GA deployments and every session.update keeps it",
            )
        if applied.state != "patched":
            return applied
        return FeatureStatus("patched", "; ".join(found.reasons))
