"""Exception types whose messages are shown to users as one line (``error: <message>``)."""


class WbError(Exception):
    """Base class for errors that the CLI reports as ``error: <message>`` with exit code 1.

    The message must be one line, name the offending file or setting, and say what is wrong.
    """


class AudioError(WbError):
    """Bad audio input or output: missing file, not audio, empty, NaN/Inf, channel count, ..."""


class ConfigError(WbError):
    """Bad configuration: unknown key, unparsable override, invalid value."""


class DependencyError(WbError):
    """A required external program or file (FluidSynth, a sound font, ffmpeg) is missing."""
