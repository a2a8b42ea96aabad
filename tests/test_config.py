"""The numeric settings (tweet_assets/config.py): every one finite, in range, named in a one-line error,
and checked before any run (the code location's load, the CLI)."""

import os
import subprocess
import sys

import pytest

from tweet_assets import config

WRONG = ["nan", "NaN", "inf", "-inf", "1e999", "abc", "1,5", "0x10", "²", "--1"]


@pytest.mark.parametrize("name", sorted(config.NUMBERS))
@pytest.mark.parametrize("text", WRONG)
def test_every_numeric_setting_refuses_what_is_not_a_finite_number(name, text):
    with pytest.raises(config.SettingError) as err:
        config.number(name, {name: text})
    message = str(err.value)
    assert message.startswith(f"{name}={text!r}: set it to a ") and "\n" not in message


@pytest.mark.parametrize("name", sorted(config.NUMBERS))
def test_unset_or_empty_is_the_default_and_the_default_is_in_range(name):
    setting = config.NUMBERS[name]
    assert config.number(name, {}) == setting.default == config.number(name, {name: "  "})
    if setting.default is not None:
        assert setting.parse(repr(setting.default)) == setting.default


@pytest.mark.parametrize("text", ["0", "-1", "-0.5", "0.0", "604801"])
def test_the_lease_ttl_is_positive_and_bounded(text):
    with pytest.raises(config.SettingError, match=r"TWEET_ASSETS_LEASE_TTL_S=.*a number of seconds > 0 and <= 604800"):
        config.number("TWEET_ASSETS_LEASE_TTL_S", {"TWEET_ASSETS_LEASE_TTL_S": text})
    assert config.number("TWEET_ASSETS_LEASE_TTL_S", {"TWEET_ASSETS_LEASE_TTL_S": "0.5"}) == 0.5  # short TTLs stay usable in tests


@pytest.mark.parametrize("name", sorted(config.NUMBERS))
def test_the_bounds_an_error_names_are_values_the_setting_accepts(name):
    """What an error tells the user to set can be set as written: each bound (and the default) in
    the message parses with the setting's own parser, inclusive bounds are accepted, an exclusive
    one is refused only for its range. Integer settings showed "<= 1e+07" before, which the integer
    parser refuses."""
    import re

    setting = config.NUMBERS[name]
    message = str(pytest.raises(config.SettingError, config.number, name, {name: "nan"}).value)
    shown = re.findall(r"(>=|<=|>) (\S+?)(?= and|\s*\(|,|$)", message)
    assert len(shown) == (setting.low is not None) + (setting.high is not None), message
    for op, text in shown:
        assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", text), f"{name}: bound {text!r} is not written as a plain number ({message})"
        if op == ">":
            with pytest.raises(config.SettingError, match="set it to"):
                setting.parse(text)
        else:
            assert setting.parse(text) == (setting.low if op == ">=" else setting.high)
    default = re.search(r"\(default (\S+)\)", message)
    assert (default is None) == (setting.default is None)
    if default:
        assert setting.parse(default.group(1)) == setting.default


def test_whole_numbers_refuse_fractions():
    with pytest.raises(config.SettingError, match="a whole number of partitions >= 1"):
        config.number("TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN", {"TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN": "2.5"})
    assert config.number("TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN", {"TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN": "7"}) == 7


def test_check_names_the_first_wrong_setting_of_the_environment():
    config.check({"TWEET_ASSETS_SAMPLE_POSTS": "5"})
    with pytest.raises(config.SettingError, match="TWEET_ASSETS_LEASE_TTL_S='nan'"):
        config.check({"TWEET_ASSETS_SAMPLE_POSTS": "5", "TWEET_ASSETS_LEASE_TTL_S": "nan"})


@pytest.mark.slow
def test_the_code_location_refuses_to_load_with_a_wrong_setting(tmp_path):
    env = {**os.environ, "TWEET_ASSETS_LEASE_TTL_S": "0", "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", "import tweet_assets.definitions"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "SettingError: TWEET_ASSETS_LEASE_TTL_S='0': set it to a number of seconds > 0" in done.stderr
