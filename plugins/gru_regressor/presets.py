"""Named data protocols for the `csv` dataset (no torch here: `__init__` imports this).

A preset fills the data settings a user leaves unset, so a published protocol is one flag:
`--set preset=ett-h1-ot`. Settings the user gives explicitly always win.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # ETTh1, univariate OT (Zhou et al., Informer, AAAI 2021; the protocol of the later tables):
    # 12 months train, 4 validation, 4 test, z-score fitted on the training rows, windows of
    # the validation and test parts starting `input_length` rows before the border, stride 1.
    "ett-h1-ot": {
        "target": ("OT",),
        "features": (),
        "date_column": "date",
        "split": (8640.0, 2880.0, 2880.0),
        "input_length": 336,
        "season": 24,
    },
}

PRESET_NAMES = ("none", *PRESETS)

# What an unset setting means without a preset.
GENERIC = {
    "features": (),
    "date_column": "auto",
    "split": (0.7, 0.1, 0.2),
    "input_length": 96,
}
