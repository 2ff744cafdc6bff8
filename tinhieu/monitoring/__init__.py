"""Live model monitoring as plain functions and JSON-able state (no Faust here).

* :mod:`tinhieu.monitoring.quality`: rolling quality of a symbol's signals from their
  outcomes (accuracy, balanced accuracy, precision and recall per class, calibration, BUY hit
  rate, paper return), per model, in time buckets;
* :mod:`tinhieu.monitoring.drift`: the training reference of the features and a rolling
  drift monitor (PSI, two-sample KS, prediction shares, ADWIN on the error stream);
* :mod:`tinhieu.monitoring.alerts`: alerts with hysteresis and their messages.

The agent, the views, the metrics and the bot call these; none of them is imported here.
"""
