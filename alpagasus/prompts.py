"""Prompt templates: the paper's rating prompts, its pairwise judge prompt, and Alpaca's.

Each rating/judge template carries a version; its hash enters every cache and artifact key,
so editing a template can never silently reuse replies made with the old one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from alpagasus.data import Item


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    version: str
    system: str
    user: str  # str.format template
    # The criterion a rating prompt asks for ("accuracy"): a reply scoring several
    # dimensions is read by this one's label (alpagasus.parsing.dimensions).
    criterion: str | None = None

    @property
    def hash(self) -> str:
        text = f"{self.name}\n{self.version}\n{self.system}\n{self.user}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def messages(self, **fields: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(**fields)},
        ]


_RATING_SYSTEM = (
    "We would like to request your feedback on the performance of AI assistant in response "
    "to the instruction and the given input displayed following."
)
# The triplet exactly as gpt4life/alpagasus rating/chatgpt_rating.py builds it, block by block.
RATING_BLOCKS = {
    "instruction": "###Instruction:\n{instruction}\n\n",
    "input": "### Input:\n{input}\n\n",
    "output": "### Response:\n{output}\n\n",
}
PAPER_ORDER = ("instruction", "input", "output")
_TRIPLET = "".join(RATING_BLOCKS[b] for b in PAPER_ORDER)
# The version of reordered(): bumped if the way blocks are reordered ever changes.
ORDER_VERSION = "order-v1"

_RATING_INSTRUCTION = (
    "Please rate according to the {criterion} of the response to the instruction and the "
    "input. Each assistant receives {article} score on a scale of 0 to 5, where a higher score "
    "indicates higher level of the {criterion}. Please first output a single line containing "
    "value indicating the scores. In the subsequent line, please provide a comprehensive "
    "explanation of your evaluation, avoiding any potential bias. \n\n"
)

RATING_PROMPTS: dict[str, ChatTemplate] = {
    "accuracy": ChatTemplate(
        name="accuracy",
        version="alpagasus-v1",
        criterion="accuracy",
        system=_RATING_SYSTEM,
        user=_TRIPLET
        + _RATING_INSTRUCTION.format(criterion="accuracy", article="a")
        .replace("{", "{{")
        .replace("}", "}}"),
    ),
    "helpfulness": ChatTemplate(
        name="helpfulness",
        version="alpagasus-v1",
        criterion="helpfulness",
        system=_RATING_SYSTEM,
        user=_TRIPLET
        + _RATING_INSTRUCTION.format(criterion="helpfulness", article="an")
        .replace("{", "{{")
        .replace("}", "}}"),
    ),
}

# The paper's GPT-4 evaluation prompt (gpt4life/alpagasus evaluation/eval.py, from Vicuna).
PAIRWISE_PROMPT = ChatTemplate(
    name="pairwise",
    version="vicuna-v1",
    system="You are a helpful and precise assistant for checking the quality of the answer.",
    user=(
        "[Question]\n{question}\n\n"
        "[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]\n\n"
        "[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n"
        "[System]\n"
        "We would like to request your feedback on the performance of two AI assistants in "
        "response to the user question displayed above.\nPlease rate the helpfulness, "
        "relevance, accuracy, level of details of their responses. Each assistant receives an "
        "overall score on a scale of 1 to 10, where a higher score indicates better overall "
        "performance.\nPlease first output a single line containing only two values indicating "
        "the scores for Assistant 1 and 2, respectively. The two scores are separated by a "
        "space. In the subsequent line, please provide a comprehensive explanation of your "
        "evaluation, avoiding any potential bias and ensuring that the order in which the "
        "responses were presented does not affect your judgment.\n\n"
    ),
)


def rating_prompt(name: str) -> ChatTemplate:
    try:
        return RATING_PROMPTS[name]
    except KeyError:
        raise ValueError(
            f"unknown rating prompt '{name}' (one of {', '.join(RATING_PROMPTS)})"
        ) from None


def reordered(template: ChatTemplate, order: tuple[str, ...]) -> ChatTemplate:
    """``template`` with the triplet's blocks in ``order`` (a permutation of PAPER_ORDER);
    the rest of the prompt unchanged. The paper's order returns ``template`` itself, so its
    requests (and cached replies) are the plain rating's. Any other order is a template of
    its own name and version ("accuracy@output-instruction-input", "alpagasus-v1+order-v1"),
    so its hash -- and every key it enters -- differs from the paper's prompt."""
    order = tuple(order)
    if sorted(order) != sorted(PAPER_ORDER):
        raise ValueError(f"order {order}: must be a permutation of {PAPER_ORDER}")
    if order == PAPER_ORDER:
        return template
    if not template.user.startswith(_TRIPLET):
        raise ValueError(f"prompt {template.name} does not start with the paper's triplet: "
                         "its blocks cannot be reordered")
    user = "".join(RATING_BLOCKS[b] for b in order) + template.user[len(_TRIPLET):]
    return ChatTemplate(name=f"{template.name}@{'-'.join(order)}",
                        version=f"{template.version}+{ORDER_VERSION}",
                        system=template.system, user=user)


def rating_messages(template: ChatTemplate, item: Item) -> list[dict[str, str]]:
    return template.messages(**item.to_dict())


# --- Stanford Alpaca training/inference format ------------------------------------------------

ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)


def alpaca_prompt(instruction: str, input: str = "") -> str:
    if input:
        return ALPACA_WITH_INPUT.format(instruction=instruction, input=input)
    return ALPACA_NO_INPUT.format(instruction=instruction)
