"""Staged fine-tuning: plans of `Stage`s, run by `StagedFineTuner`.

```python
import keras_hubkit as hk

plan = [hk.finetune.Stage(2, lr=1e-3),
        hk.finetune.Stage(3, unfreeze=2, lr=1e-4, layer_decay=0.5)]
history = hk.finetune.StagedFineTuner(model, plan, loss=...).run(x, y)
```
"""

from keras_hubkit.finetune.auto import AutoPlan
from keras_hubkit.finetune.groups import Group
from keras_hubkit.finetune.groups import base_groups
from keras_hubkit.finetune.lr_finder import LRFindResult
from keras_hubkit.finetune.lr_finder import find_for_plan
from keras_hubkit.finetune.lr_finder import lr_find
from keras_hubkit.finetune.runner import StagedFineTuner
from keras_hubkit.finetune.runner import StagedHistory
from keras_hubkit.finetune.runner import fine_tune
from keras_hubkit.finetune.stage import Stage

__all__ = [
    "AutoPlan",
    "Group",
    "LRFindResult",
    "Stage",
    "StagedFineTuner",
    "StagedHistory",
    "base_groups",
    "find_for_plan",
    "fine_tune",
    "lr_find",
]
