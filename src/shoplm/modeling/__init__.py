"""Model architectures of shoplm's own, registered with transformers' Auto classes on import.

Training and serving both import this package, so a checkpoint of one of these architectures
loads through ``AutoModelForSequenceClassification`` like any other.
"""

from shoplm.modeling.ngram_classifier import NgramBagConfig, NgramBagForSequenceClassification, register

register()

__all__ = ["NgramBagConfig", "NgramBagForSequenceClassification"]
