"""`[alerts]` and `[alerts.webhooks.NAME]`: hostile values first, each problem named by its key."""

from __future__ import annotations

import math

import pytest

from supervisor.config import AlertsConfig, ConfigError, parse_config
from tests.helpers import config_dict

SECRET = "https://hooks.slack.com/services/T000/B000/very-secret"


def problems(alerts: dict, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config_dict(alerts=alerts), environ=environ or {})
    return info.value.problems


def test_no_alerts_table_means_alerts_off_with_the_documented_defaults():
    cfg = parse_config(config_dict(), environ={})
    assert cfg.alerts == AlertsConfig()
    assert (cfg.alerts.enabled, cfg.alerts.interval_s, cfg.alerts.startup_grace_s) == (False, 1.0, 10.0)
    assert (cfg.alerts.block_rate_per_account_per_min, cfg.alerts.block_rate_per_reason_per_min) == (30, 60)
    assert (cfg.alerts.source_stale_s, cfg.alerts.actor_restarts) == (30.0, 3)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("enabled", "yes", "alerts.enabled: must be true or false, got 'yes'"),
        ("interval_s", math.nan, "alerts.interval_s: must be finite, got nan"),
        ("interval_s", 0, "alerts.interval_s: must be > 0, got 0"),
        ("interval_s", 6, "alerts.interval_s: must be <= 5, got 6"),
        ("startup_grace_s", -1, "alerts.startup_grace_s: must be >= 0, got -1"),
        ("block_rate_per_account_per_min", 0, "alerts.block_rate_per_account_per_min: must be >= 1, got 0"),
        ("block_rate_per_reason_per_min", 2.5, "alerts.block_rate_per_reason_per_min: must be an integer, got 2.5"),
        ("source_stale_s", -0.1, "alerts.source_stale_s: must be >= 0, got -0.1"),
        ("source_stale_s", math.inf, "alerts.source_stale_s: must be finite, got inf"),
        ("actor_restarts", True, "alerts.actor_restarts: must be an integer, got True"),
        ("actor_restart", 3, 'alerts.actor_restart: unknown key; did you mean "actor_restarts"?'),
    ],
)
def test_a_bad_alerts_value_is_named_by_its_key(key, value, problem):
    assert problems({key: value}) == [problem]


@pytest.mark.parametrize(
    ("hook", "problem"),
    [
        ({}, "alerts.webhooks.h.url: is required (or url_env: an environment variable holding the URL)"),
        ({"url": SECRET, "url_env": "X"}, "alerts.webhooks.h.url_env: give url or url_env, not both"),
        ({"url": "ftp://example.com/x"}, "alerts.webhooks.h.url: must be an http:// or https:// URL"),
        ({"url": "https://"}, "alerts.webhooks.h.url: must be an http(s) URL with a host"),
        ({"url": "http://a b/"}, "alerts.webhooks.h.url: must be an http(s) URL without spaces or control characters"),
        ({"url": "http://h:99999/"}, "alerts.webhooks.h.url: must be an http(s) URL (this one cannot be parsed)"),
        ({"url": 3}, "alerts.webhooks.h.url: must be a non-empty string, got 3"),
        ({"url_env": "NOT_SET"}, "alerts.webhooks.h.url_env: environment variable NOT_SET is not set (or empty)"),
        # a string in a webhook table is never echoed (it may be a URL in the wrong key)
        ({"url": SECRET, "format": "teams"}, "alerts.webhooks.h.format: must be one of json, slack"),
        ({"url": SECRET, "timeout_s": 0}, "alerts.webhooks.h.timeout_s: must be > 0, got 0"),
        ({"url": SECRET, "max_backoff_s": math.nan}, "alerts.webhooks.h.max_backoff_s: must be finite, got nan"),
        ({"url": SECRET, "headers": {}}, "alerts.webhooks.h.headers: unknown key"),
    ],
)
def test_a_bad_webhook_is_named_by_its_key_and_never_echoes_its_url(hook, problem):
    found = problems({"webhooks": {"h": hook}})
    assert found == [problem]
    assert "very-secret" not in " ".join(found)


def test_webhook_names_must_tell_webhooks_apart_and_urls_must_differ():
    found = problems(
        {
            "webhooks": {
                "ops": {"url": "https://a.example/x"},
                "OPS": {"url": "https://b.example/x"},
                "chat": {"url": "https://a.example/x"},
                "bad name": {"url": "https://c.example/x"},
                "loose": 3,
            }
        }
    )
    assert found == [
        "alerts.webhooks.OPS: is the same name as webhook 'ops' but for case",
        "alerts.webhooks.chat: has the same URL as webhook 'ops': each alert would be sent twice",
        "alerts.webhooks.bad name: a webhook name is 1-64 letters, digits or _.-",
        "alerts.webhooks.loose: must be a table with url (or url_env), format, timeout_s, max_backoff_s",
    ]


def test_a_webhook_url_from_the_environment_is_loaded_and_kept_out_of_the_repr():
    cfg = parse_config(
        config_dict(alerts={"enabled": True, "webhooks": {"chat": {"url_env": "HOOK", "format": "slack"}}}),
        environ={"HOOK": SECRET},
    )
    hook = cfg.alerts.webhooks["chat"]
    assert (hook.url, hook.format, hook.timeout_s, hook.max_backoff_s) == (SECRET, "slack", 3.0, 60.0)
    assert "very-secret" not in repr(cfg)


def test_a_url_pasted_into_the_wrong_key_is_not_echoed_and_case_or_port_does_not_make_a_new_url():
    found = problems(
        {
            "webhooks": {
                "ops": {"url": "https://hooks.example/x", "timeout_s": SECRET, "format": SECRET},
                "again": {"url": "HTTPS://Hooks.Example:443/x"},
            }
        }
    )
    assert not any("hooks.slack.com" in p or "very-secret" in p for p in found), found
    assert "alerts.webhooks.ops.timeout_s: must be a number" in found
    assert "alerts.webhooks.ops.format: must be one of json, slack" in found
    assert "alerts.webhooks.again: has the same URL as webhook 'ops': each alert would be sent twice" in found
