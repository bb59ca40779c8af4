"""The errors that mean "the input is wrong" (shown to a user as one line), gathered in one place."""
from sdpt.config import ConfigError
from sdpt.data import DataError
from sdpt.detector import ClassPromptError, ModelLoadError
from sdpt.prompt_io import PromptFileError

USER_ERRORS = (ConfigError, DataError, ClassPromptError, ModelLoadError, PromptFileError)
