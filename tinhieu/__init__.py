"""tinhieu: the plain-Python core (no Faust imports).

Features, models, risk rules, settings, symbols and data loading live here so that
training, the offline backtest, replay and the live stream call the same code.
"""

__version__ = "0.1.0"
