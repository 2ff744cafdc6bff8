import pytest

from tinhieu.settings import SettingsError, load_settings


def test_monitoring_defaults() -> None:
    s = load_settings(_env_file=None)
    assert s.monitor_windows_s == (86_400, 604_800)
    assert s.drift_window == 1440
    assert s.drift_psi_threshold == 0.25
    assert s.drift_ks_pvalue == 0.001
    assert s.drift_min_features == 10
    assert s.drift_prediction_psi_threshold == 0.25
    assert s.drift_adwin_delta == 0.002
    assert s.drift_check_every == 60
    assert s.alert_clear_after == 3
    assert s.losing_streak_max == 5
    assert s.accuracy_drop_pct == 10.0
    assert s.accuracy_min_outcomes == 200


def test_windows_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINHIEU_MONITOR_WINDOWS_S", "604800, 3600,86400,3600")
    assert load_settings(_env_file=None).monitor_windows_s == (3600, 86_400, 604_800)


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("TINHIEU_MONITOR_WINDOWS_S", "1d,7d", "monitor_windows_s"),
        ("TINHIEU_MONITOR_WINDOWS_S", "86400,2592000", "monitor_windows_s"),
        ("TINHIEU_MONITOR_WINDOWS_S", "0", "monitor_windows_s"),
        ("TINHIEU_MONITOR_WINDOWS_S", "", "monitor_windows_s"),
        ("TINHIEU_DRIFT_WINDOW", "10", "drift_window"),
        ("TINHIEU_DRIFT_PSI_THRESHOLD", "0", "drift_psi_threshold"),
        ("TINHIEU_DRIFT_KS_PVALUE", "1.5", "drift_ks_pvalue"),
        ("TINHIEU_DRIFT_MIN_FEATURES", "0", "drift_min_features"),
        ("TINHIEU_DRIFT_PREDICTION_PSI_THRESHOLD", "-1", "drift_prediction_psi_threshold"),
        ("TINHIEU_DRIFT_ADWIN_DELTA", "1", "drift_adwin_delta"),
        ("TINHIEU_DRIFT_CHECK_EVERY", "0", "drift_check_every"),
        ("TINHIEU_ALERT_CLEAR_AFTER", "0", "alert_clear_after"),
        ("TINHIEU_LOSING_STREAK_MAX", "0", "losing_streak_max"),
        ("TINHIEU_ACCURACY_DROP_PCT", "101", "accuracy_drop_pct"),
        ("TINHIEU_ACCURACY_MIN_OUTCOMES", "0", "accuracy_min_outcomes"),
    ],
)
def test_a_wrong_monitoring_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert named in str(err.value)
    assert env in str(err.value)


def test_check_every_cannot_exceed_the_window() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None, drift_window=120, drift_check_every=240)
    assert "drift_check_every" in str(err.value) and "drift_window" in str(err.value)
    assert load_settings(_env_file=None, drift_window=120, drift_check_every=120)
