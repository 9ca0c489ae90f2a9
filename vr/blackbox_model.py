"""BlackBoxVRModel: the learner's side of black-box reprogramming (prompts, text table, aggregation).

Like ``ReprogrammedCLIP`` but CLIP is reached only through ``BlackBoxCLIP.query``: the prompted images go in,
scores of the table's texts come out (no gradient), each text keeps the score under ITS prompt and the
aggregation (identity, PRM, ...) turns them into class logits. Queries made in train mode are charged to
the training budget, those in eval mode are counted as evaluation queries.
"""
import torch.nn as nn

from .blackbox import scores_to_logits
from .model import own_prompt_scores


class BlackBoxVRModel(nn.Module):
    first_layer_split_status = "off: black box (CLIP is queried on whole prompted images)"

    def __init__(self, box, prompts, text_table, aggregation):
        super().__init__()
        if prompts.image_size != box.image_size:
            raise ValueError(f"The prompts produce {prompts.image_size}px images but the black box "
                             f"{box.name} takes {box.image_size}px.")
        aggregation.check_table(text_table)
        self.__dict__["box"] = box  # not a submodule: nothing of it is saved
        self.prompts = prompts
        self.text_table = text_table
        self.aggregation = aggregation

    @property
    def num_classes(self) -> int:
        return self.text_table.num_classes

    def description_logits(self, x01):
        images = self.prompts(x01)
        scores = self.box.query(images, self.text_table.texts, phase="train" if self.training else "eval")
        z = scores_to_logits(scores, self.box.output).to(x01.device)
        return own_prompt_scores(z.view(self.prompts.num_prompts, x01.shape[0], -1), self.text_table)

    def forward(self, x01):
        return self.aggregation(self.description_logits(x01))

    def forward_with_descriptions(self, x01):
        z = self.description_logits(x01)
        return self.aggregation(z), z

    def num_trainable_entries(self) -> int:
        return self.prompts.num_trainable_entries()
