"""Settings: sensible defaults, values read from a mapping, one sentence per bad value, and which source wins."""

from __future__ import annotations

import os

import pytest

from shared import config
from shared.config import PARSERS, Settings, SettingsError, parse_settings

SECRET_KEY = "sk-test-0123456789-very-secret"


def problems_with(values: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as error:
        parse_settings(values)
    return error.value.problems


def test_defaults_run_offline_as_catgpt_pacing_words_50_ms_apart():
    settings = parse_settings({})

    assert settings == Settings()
    assert settings.offline
    assert settings.assistant_name == "CatGPT"
    assert settings.word_delay_ms == 50
    assert settings.conversation_mode == "server"
    assert "CatGPT" in settings.instructions


def test_values_are_read_from_a_mapping():
    settings = parse_settings(
        {
            "OPENAI_API_KEY": f"  {SECRET_KEY}  ",
            "OPENAI_MODEL": "gpt-test",
            "OPENAI_BASE_URL": "http://localhost:11434/v1/",
            "CONVERSATION_MODE": " Local ",
            "REQUEST_TIMEOUT_SECONDS": "12.5",
            "ASSISTANT_NAME": "Tom",
            "ASSISTANT_INSTRUCTIONS": "Be brief.",
            "WORD_DELAY_MS": "500",
            "LEAVE_GRACE_SECONDS": "0",
            "HEARTBEAT_TIMEOUT_SECONDS": "5",
            "ROOM_EMPTY_GRACE_SECONDS": "120",
            "MAX_MESSAGE_CHARS": "280",
            "MAX_PARTICIPANTS": "3",
        }
    )

    assert not settings.offline
    assert settings.openai_api_key == SECRET_KEY
    assert settings.openai_model == "gpt-test"
    assert settings.openai_base_url == "http://localhost:11434/v1"
    assert settings.conversation_mode == "local"
    assert settings.request_timeout_seconds == 12.5
    assert settings.assistant_name == "Tom"
    assert settings.instructions == "Be brief."
    assert settings.word_delay_ms == 500
    assert settings.leave_grace_seconds == 0
    assert settings.heartbeat_timeout_seconds == 5
    assert settings.room_empty_grace_seconds == 120
    assert settings.max_message_chars == 280
    assert settings.max_participants == 3


def test_values_need_not_be_strings():
    # `.streamlit/secrets.toml` gives numbers as numbers.
    settings = parse_settings({"WORD_DELAY_MS": 750, "LEAVE_GRACE_SECONDS": 2.5})

    assert (settings.word_delay_ms, settings.leave_grace_seconds) == (750, 2.5)


def test_instructions_name_the_assistant_unless_set():
    assert "You are Tom" in parse_settings({"ASSISTANT_NAME": "Tom"}).instructions


@pytest.mark.parametrize(
    ("variable", "raw", "sentence"),
    [
        (
            "WORD_DELAY_MS",
            "abc",
            "`WORD_DELAY_MS` must be a whole number from 0 to 2000 (got 'abc').",
        ),
        (
            "WORD_DELAY_MS",
            "5000",
            "`WORD_DELAY_MS` must be a whole number from 0 to 2000 (got '5000').",
        ),
        ("WORD_DELAY_MS", "1.5", "`WORD_DELAY_MS` must be a whole number from 0 to 2000 (got '1.5')."),
        (
            "HEARTBEAT_TIMEOUT_SECONDS",
            "1",
            "`HEARTBEAT_TIMEOUT_SECONDS` must be a number of seconds from 5 to 3600 (got '1').",
        ),
        (
            "LEAVE_GRACE_SECONDS",
            "nan",
            "`LEAVE_GRACE_SECONDS` must be a number of seconds from 0 to 3600 (got 'nan').",
        ),
        ("CONVERSATION_MODE", "cloud", "`CONVERSATION_MODE` must be one of `server`, `local` (got 'cloud')."),
        (
            "OPENAI_BASE_URL",
            "localhost:11434",
            "`OPENAI_BASE_URL` must be an http:// or https:// address with a host, such as http://localhost:11434/v1 "
            "(got 'localhost:11434').",
        ),
        (
            "ASSISTANT_NAME",
            "x" * 33,
            f"`ASSISTANT_NAME` must be 1 to 32 characters on one line (got {'x' * 33!r}).",
        ),
        ("MAX_PARTICIPANTS", "0", "`MAX_PARTICIPANTS` must be a whole number from 1 to 1000 (got '0')."),
    ],
)
def test_bad_value_gives_one_sentence_naming_the_variable_and_what_is_allowed(variable, raw, sentence):
    assert problems_with({variable: raw}) == [sentence]


@pytest.mark.parametrize(
    "raw", ["localhost:6379", "http://localhost:6379", "redis://:s3cret-pass@", "redis://host name:6379"]
)
def test_a_bad_redis_url_is_one_sentence_that_never_repeats_it(raw):
    assert problems_with({"REDIS_URL": raw}) == [
        "`REDIS_URL` must be a redis:// or rediss:// address with a host, such as redis://localhost:6379/0."
    ]


@pytest.mark.parametrize(
    "raw", ["redis://localhost:6379/0", "rediss://:s3cret-pass@redis.example.com:6380/2", "redis://10.0.0.5"]
)
def test_a_redis_url_with_tls_or_a_password_is_taken_and_never_shown(raw):
    settings = parse_settings({"REDIS_URL": f" {raw} "})
    assert settings.redis_url == raw
    assert "s3cret" not in repr(settings)


def test_without_redis_url_rooms_stay_in_memory():
    assert parse_settings({}).redis_url is None


def test_long_bad_value_is_shortened_in_the_sentence():
    [problem] = problems_with({"OPENAI_MODEL": "m" * 500})

    assert problem.startswith("`OPENAI_MODEL` must be 1 to 100 characters on one line (got 'mmmm")
    assert len(problem) < 150


def test_several_bad_values_are_all_named():
    problems = problems_with({"WORD_DELAY_MS": "abc", "MAX_PARTICIPANTS": "-1", "CONVERSATION_MODE": "cloud"})

    assert len(problems) == 3
    assert [p.split("`")[1] for p in problems] == [
        "CONVERSATION_MODE",
        "WORD_DELAY_MS",
        "MAX_PARTICIPANTS",
    ]


def test_error_message_is_every_sentence_together():
    with pytest.raises(SettingsError) as error:
        parse_settings({"WORD_DELAY_MS": "abc", "MAX_PARTICIPANTS": "-1"})

    assert str(error.value) == " ".join(error.value.problems)


@pytest.mark.promise_api_key
def test_api_key_never_appears_in_errors_or_repr():
    values = {"OPENAI_API_KEY": SECRET_KEY, "WORD_DELAY_MS": "abc", "OPENAI_ASSISTANT_ID": "asst_1"}
    with pytest.raises(SettingsError) as error:
        parse_settings(values)
    settings = parse_settings({"OPENAI_API_KEY": SECRET_KEY})

    assert SECRET_KEY not in str(error.value)
    assert SECRET_KEY not in " ".join(error.value.problems)
    assert SECRET_KEY not in repr(settings)
    assert SECRET_KEY not in str(settings)
    assert settings.openai_api_key == SECRET_KEY


def test_first_source_that_names_a_variable_wins():
    environment = {"ASSISTANT_NAME": "Tom", "WORD_DELAY_MS": "500"}
    secrets = {"ASSISTANT_NAME": "Jerry", "MAX_PARTICIPANTS": "7"}

    settings = parse_settings(environment, secrets)

    assert (settings.assistant_name, settings.word_delay_ms, settings.max_participants) == (
        "Tom",
        500,
        7,
    )


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_value_counts_as_unset(empty):
    settings = parse_settings({"ASSISTANT_NAME": empty, "OPENAI_API_KEY": empty}, {"ASSISTANT_NAME": "Jerry"})

    assert settings.assistant_name == "Jerry"
    assert settings.offline


def test_a_bad_value_in_a_later_source_is_ignored_when_an_earlier_one_wins():
    settings = parse_settings({"WORD_DELAY_MS": "500"}, {"WORD_DELAY_MS": "abc"})

    assert settings.word_delay_ms == 500


def test_every_setting_has_a_variable():
    assert {name.lower() for name in PARSERS} == set(Settings.__dataclass_fields__)


@pytest.mark.parametrize("raw", ["http://", "https:///v1", "http://:8080/v1", "http://local host/v1"])
def test_a_server_address_without_a_host_is_refused(raw):
    [problem] = problems_with({"OPENAI_BASE_URL": raw})

    assert problem.startswith("`OPENAI_BASE_URL` must be an http:// or https:// address with a host")


def test_a_zero_window_is_accepted_and_says_it_switches_flood_control_off():
    assert parse_settings({"RATE_LIMIT_SECONDS": "0"}).rate_limit_seconds == 0
    [problem] = problems_with({"RATE_LIMIT_SECONDS": "-1"})
    assert "(0 = no flood control)" in problem


# --- where each value comes from -------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """A `.env` file, Streamlit secrets already copied into the environment as Streamlit copies them, and
    the environment the process started with; each test fills in what it needs."""

    class Sources:
        env_file = tmp_path / ".env"
        startup = tmp_path / "environ"
        secrets: dict[str, object] = {}

        def start_with(self, **variables: str) -> None:
            self.startup.write_bytes(b"".join(f"{k}={v}\0".encode() for k, v in variables.items()))
            for name, value in variables.items():
                monkeypatch.setenv(name, value)

        def set_secrets(self, **values: object) -> None:
            self.secrets.update(values)
            for name, value in values.items():  # what `_maybe_set_environment_variable` does
                monkeypatch.setenv(name, str(value))

    made = Sources()
    made.env_file.write_text("")
    made.start_with()
    monkeypatch.setattr(config, "STARTUP_ENVIRONMENT_FILE", made.startup)
    monkeypatch.setattr(config, "streamlit_secrets", lambda: made.secrets)
    for variable in PARSERS:
        monkeypatch.delenv(variable, raising=False)
    return made


def test_environment_beats_env_file_which_beats_secrets_despite_streamlits_copy(sources):
    sources.start_with(ASSISTANT_NAME="FromEnvironment")
    sources.env_file.write_text("ASSISTANT_NAME=FromDotenv\nMAX_PARTICIPANTS=22\n")
    sources.set_secrets(ASSISTANT_NAME="FromSecrets", MAX_PARTICIPANTS=33, MAX_MESSAGE_CHARS=333)

    settings = config.load_settings(sources.env_file)

    assert settings.assistant_name == "FromEnvironment"
    assert settings.max_participants == 22
    assert settings.max_message_chars == 333


def test_a_variable_set_while_running_still_counts_as_the_environment(sources, monkeypatch):
    monkeypatch.setenv("MAX_PARTICIPANTS", "7")  # as a test or a wrapper script would
    sources.env_file.write_text("MAX_PARTICIPANTS=22\n")

    assert config.load_settings(sources.env_file).max_participants == 7


def test_env_file_values_stay_out_of_the_environment(sources):
    sources.env_file.write_text(f"OPENAI_API_KEY={SECRET_KEY}\nOPENAI_BASE_URL=\nASSISTANT_NAME=\n")

    settings = config.load_settings(sources.env_file)

    assert settings.openai_api_key == SECRET_KEY
    assert settings.openai_base_url is None and settings.assistant_name == "CatGPT"
    assert "OPENAI_BASE_URL" not in os.environ and "OPENAI_API_KEY" not in os.environ


def test_streamlit_still_copies_top_level_secrets_over_the_environment(tmp_path):
    """What `real_environment` sees past: loading the secrets (public `st.secrets`) overwrites a variable
    of the same name in `os.environ`, while the process's start environment keeps the real value. If an
    upgrade of Streamlit stops overwriting it, this fails: `real_environment` may then go."""
    import subprocess
    import sys

    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('CHATROOM_PROBE = "from secrets"\n')
    probe = (
        "import os, streamlit as st\n"
        "st.secrets.to_dict()\n"
        "from shared.config import _startup_environment\n"
        "print(os.environ['CHATROOM_PROBE'], '|', _startup_environment()['CHATROOM_PROBE'])\n"
    )
    env = {**os.environ, "CHATROOM_PROBE": "from the environment", "HOME": str(tmp_path)}
    env["PYTHONPATH"] = str(config.ENV_FILE.parent)
    shown = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()

    assert shown == "from secrets | from the environment"
