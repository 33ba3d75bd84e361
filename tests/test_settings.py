"""Settings come from KYMA_* variables once; bad values name the variable; the key never shows."""

from pathlib import Path

import pytest

from kyma_mcp.settings import ConfigError, Settings


def test_defaults_match_the_documented_contract() -> None:
    settings = Settings.from_env({})

    assert settings.base_url == "https://kymaapi.com/v1"
    assert settings.default_model == "qwen-3.6-plus"
    assert settings.default_image_model == "recraft-v4"
    assert settings.tool_timeout_seconds == 50
    assert settings.max_retries == 2
    assert not settings.has_api_key


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "KYMA_API_KEY": "ky-abc123456",
            "KYMA_BASE_URL": "http://127.0.0.1:9/v1/",
            "KYMA_DEFAULT_MODEL": "glm-5.1",
            "KYMA_DEFAULT_IMAGE_MODEL": "ideogram-v3",
            "KYMA_TOOL_TIMEOUT_SECONDS": "12.5",
            "KYMA_MAX_RETRIES": "0",
            "KYMA_TIER": "3",
            "KYMA_OUTPUT_DIR": "/tmp/kyma-out",
            "KYMA_MCP_AUTH_TOKEN": "secret-token",
        }
    )

    assert settings.has_api_key
    assert settings.base_url == "http://127.0.0.1:9/v1"
    assert (settings.default_model, settings.default_image_model) == ("glm-5.1", "ideogram-v3")
    assert (settings.tool_timeout_seconds, settings.max_retries, settings.tier) == (12.5, 0, 3)
    assert settings.output_dir == Path("/tmp/kyma-out")


def test_empty_values_count_as_unset() -> None:
    assert Settings.from_env({"KYMA_API_KEY": "  ", "KYMA_BASE_URL": ""}) == Settings.from_env({})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KYMA_BASE_URL", "kymaapi.com/v1"),
        ("KYMA_BASE_URL", "ftp://kymaapi.com"),
        ("KYMA_TOOL_TIMEOUT_SECONDS", "-1"),
        ("KYMA_TOOL_TIMEOUT_SECONDS", "soon"),
        ("KYMA_MAX_RETRIES", "-2"),
        ("KYMA_TIER", "9"),
        ("KYMA_OUTPUT_DIR", "images/out"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_the_key_never_appears_in_reprs_or_errors() -> None:
    key = "ky-canary-0123456789"
    settings = Settings.from_env({"KYMA_API_KEY": key})

    assert key not in repr(settings)
    assert key not in str(settings.model_dump())
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == key


def test_a_home_folder_that_does_not_exist_is_a_config_error_not_a_crash() -> None:
    with pytest.raises(ConfigError, match=r"KYMA_OUTPUT_DIR=.*home folder that does not exist"):
        Settings.from_env({"KYMA_OUTPUT_DIR": "~nosuchuser-kyma/images"})
