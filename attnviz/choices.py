"""The named choices of attnviz's configs, defined once, in a module that imports nothing.

Each tuple belongs to one config (the module that uses it re-exports it under the same name, e.g.
``attnviz.placement.PLACEMENTS``); keeping them here lets the command line build its parsers —
and ``attnviz --help`` answer — without importing torch or transformers.
"""

#: Where a soft prompt goes (:class:`attnviz.PromptPlacement`).
PLACEMENTS = ("start", "prefix", "infix", "suffix", "scattered")
#: How :func:`attnviz.with_pattern` runs attention.
BACKENDS = ("dense", "sdpa", "flex", "tiled")
#: How a classification head reads the sequence (:class:`attnviz.prompts.ClassificationHead`).
POOLINGS = ("cls", "first", "mean")
#: How a soft prompt's vectors start (:meth:`attnviz.prompts.SoftPrompt.init`).
INITS = ("random", "vocab", "text", "labels")
#: Training options (:class:`attnviz.prompts.TrainConfig`).
OPTIMIZERS = ("adamw", "adafactor")
SCHEDULES = ("linear", "constant")
MIXED_PRECISION = ("no", "bf16", "fp16")
#: Data sets ``attnviz data`` prepares (:mod:`attnviz.tasks`).
DATASETS = ("nli", "documents", "qa")
#: Long-document corpora (:func:`attnviz.tasks.prepare_documents`).
DOCUMENT_SETS = ("bbc", "polarity")
#: Sweep data variants: the documents as they are, behind filler, or at each evidence position
#: (:mod:`attnviz.studies.sweep`).
SWEEP_VARIANTS = ("plain", "far", "position")
#: Sweep reference rows: the head alone under each window; a prompt under full attention.
SWEEP_REFERENCES = ("head_only", "full")
