"""The model's life on one machine, on the real 2013 flights.

data → Feast → train a champion → export → serve → fine-tune a challenger on a newer
window → canary it behind the router on replayed traffic with delayed ground truth →
automated analysis promotes or rolls back → an HTML report with the pictures.

- ``record``: what a run did (``LoopRecord``) and what one training gave (``TrainingOutcome``)
- ``scenario``: the champion → challenger → canary sequence (``run_loop``)
- ``replay``: replayed flights through the router, labels fed back, analysis deciding
- ``report``: the run's HTML report and its canary plot
- ``pipeline_trainer``: training through the KFP pipeline, run locally by kfp.local
"""
