"""Config loading: valid files load, and every kind of mistake is named with file, field and reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gp_pipelines.config import (
    ConfigError,
    builtin_sandbox_config,
    load_config,
    load_config_file,
    parse_config,
)

GUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gp.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


VALID = f"""
reporting_currency: USD
instances:
  - key: au
    name: Example AU
    account_id: {GUID}
    application_key_env: [CIN7_AU_KEY_1, CIN7_AU_KEY_2]
    base_currency: AUD
  - key: nz
    name: Example NZ
    account_id: {GUID}
    application_key_env: [CIN7_NZ_KEY]
    base_url: https://example.test/ExternalApi/v2
partners:
  - key: acme3pl
    name: Acme 3PL
    kind: threepl
    instance: au
    interchange_id: ACME3PL
    transport: {{kind: folder, root: /srv/edi/acme}}
"""


def test_valid_file_loads_with_defaults(tmp_path):
    config = load_config_file(_write(tmp_path, VALID))
    assert config.instance_keys == ["au", "nz"]
    assert config.reporting_currency == "USD"
    assert config.instance("au").base_url == "https://inventory.dearsystems.com/ExternalApi/v2/"
    assert config.instance("nz").base_url == "https://example.test/ExternalApi/v2/"  # slash added
    assert config.instance("au").application_key_env == ["CIN7_AU_KEY_1", "CIN7_AU_KEY_2"]
    assert config.partner("acme3pl").transport.root == "/srv/edi/acme"
    assert config.partner("acme3pl").usage == "P"
    assert config.source == str(tmp_path / "gp.yaml")


def test_missing_key_variables_lists_unset_ones(tmp_path, monkeypatch):
    config = load_config_file(_write(tmp_path, VALID))
    monkeypatch.setenv("CIN7_AU_KEY_1", "x")
    monkeypatch.delenv("CIN7_AU_KEY_2", raising=False)
    monkeypatch.setenv("CIN7_NZ_KEY", "")
    assert config.missing_key_variables() == ["CIN7_AU_KEY_2", "CIN7_NZ_KEY"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("account_id: " + GUID, "account_id: not-a-guid", 1), "instances[0] (key 'au').account_id: must be"),
        (("key: nz", "key: NZ", 1), "instances[1] (key 'NZ').key: must be lowercase"),
        (("key: nz", "key: au", 1), "key 'au' is used twice"),
        (("reporting_currency: USD", "reporting_currency: usd", 1), "reporting_currency: must be a three"),
        (("base_currency: AUD", "base_currency: AUDX", 1), "instances[0] (key 'au').base_currency"),
        (("[CIN7_NZ_KEY]", "[]", 1), "name at least one environment variable"),
        (("[CIN7_NZ_KEY]", "['0a1b-secret-looking-key!']", 1), "is not an environment variable name"),
        (("base_url: https://example.test", "base_url: ftp://example.test", 1), "must be an http(s) URL"),
        (("    name: Example AU\n", "    nmae: Example AU\n", 1), "instances[0] (key 'au').nmae: unknown field"),
        (("    name: Example AU\n", "", 1), "instances[0] (key 'au').name: required field is missing"),
        (("partners:", "partnerz:", 1), "partnerz: unknown field"),
    ],
)
def test_each_mistake_names_file_field_and_reason(tmp_path, change, expected):
    old, new, count = change
    assert old in VALID
    path = _write(tmp_path, VALID.replace(old, new, count))
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert expected in message, message


def test_missing_file_and_bad_yaml_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config_file(tmp_path / "nope.yaml")
    path = _write(tmp_path, "reporting_currency: USD\ninstances: [\n")
    with pytest.raises(ConfigError, match=r"gp\.yaml: not valid YAML at line \d+, column \d+"):
        load_config_file(path)
    path = _write(tmp_path, "- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config_file(path)


def test_empty_instances_rejected():
    with pytest.raises(ConfigError, match="list at least one Cin7 Core instance"):
        parse_config({"reporting_currency": "USD", "instances": []}, "inline")


def test_builtin_config_is_the_three_sandbox_instances(monkeypatch):
    monkeypatch.delenv("GP_CONFIG", raising=False)
    monkeypatch.setenv("GP_SANDBOX_PORT", "9999")
    config = load_config()
    assert config.instance_keys == ["au", "nz", "us"]
    assert [i.base_currency for i in config.instances] == ["AUD", "NZD", "USD"]
    assert config.reporting_currency == "USD"
    assert all(i.base_url == "http://127.0.0.1:9999/ExternalApi/v2/" for i in config.instances)
    # keys are named, never embedded
    assert config.instance("au").application_key_env[0] == "GP_SANDBOX_AU_KEY_1"
    assert builtin_sandbox_config(port=1, seed=7).instance("au").account_id != config.instance("au").account_id


def test_gp_config_env_selects_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GP_CONFIG", str(_write(tmp_path, VALID)))
    assert load_config().instance_keys == ["au", "nz"]
