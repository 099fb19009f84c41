"""In-process transformers judge (the embedded default, or any local causal LM)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from alpagasus.config import JudgeConfig
from alpagasus.expected import Expected
from alpagasus.judges.base import JudgeReply, Messages, ScoreFormat
from alpagasus.models import load_for_inference, load_tokenizer, resolve_model_path


class LocalJudge:
    def __init__(self, cfg: JudgeConfig, cache_dir: str | Path, seed: int | None = None):
        # expected: the same reading as logits (the score is the reply's first token here),
        # named as for API judges.
        if cfg.score_mode not in ("logits", "text", "expected"):
            raise ValueError(f"judge.score_mode must be logits, expected or text, "
                             f"got '{cfg.score_mode}'")
        self.cfg = cfg
        self.seed = seed  # temperature > 0: the draws of a complete() call repeat with it
        path = resolve_model_path(cfg.model, cache_dir)
        self.tok = load_tokenizer(path)
        self.tok.padding_side = "left"
        self.model = load_for_inference(path)
        self.digit_ids = self._digit_token_ids()

    def _digit_token_ids(self) -> list[int]:
        ids = [self.tok.encode(str(d), add_special_tokens=False) for d in range(10)]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"score_mode={self.cfg.score_mode} needs a tokenizer with one token "
                             "per digit")
        return [i[0] for i in ids]

    def close(self) -> None:
        del self.model

    def _render(self, messages: Messages) -> str:
        if self.tok.chat_template:
            return self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def complete(
        self, requests: list[Messages], score_format: ScoreFormat, desc: str = "judging"
    ) -> list[JudgeReply]:
        import torch  # here, not at import: `stage=rate` with an API judge never loads it

        if self.seed is not None:
            torch.manual_seed(self.seed)
        prompts = [self._render(m) for m in requests]
        replies: list[JudgeReply | None] = [None] * len(prompts)
        lengths = [len(self.tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        todo = []
        for i, n in enumerate(lengths):
            if n + self.cfg.max_tokens > self.cfg.context_tokens:
                replies[i] = JudgeReply("", status="too_long", input_tokens=n,
                                        error=f"{n} prompt tokens > context {self.cfg.context_tokens}")
            else:
                todo.append(i)
        # Longest first: batches of similar length waste less compute on padding.
        todo.sort(key=lambda i: -lengths[i])
        bs = max(1, self.cfg.batch_size)
        with tqdm(total=len(todo), desc=desc, unit="req") as bar:
            for start in range(0, len(todo), bs):
                batch = todo[start : start + bs]
                t0 = time.perf_counter()
                texts = self._batch([prompts[i] for i in batch], score_format)
                latency = (time.perf_counter() - t0) / len(batch)
                for i, (text, n_out, expected) in zip(batch, texts, strict=True):
                    replies[i] = JudgeReply(text, input_tokens=lengths[i], output_tokens=n_out,
                                            latency_s=latency, expected=expected)
                bar.update(len(batch))
        return [r for r in replies if r is not None]

    def _batch(self, prompts: list[str], score_format: ScoreFormat
               ) -> list[tuple[str, int, list[Expected] | None]]:
        import torch

        with torch.no_grad():
            return self._batch_no_grad(prompts, score_format)

    def _batch_no_grad(self, prompts: list[str], score_format: ScoreFormat
                       ) -> list[tuple[str, int, list[Expected] | None]]:
        if self.cfg.score_mode == "text":
            return [(text, n, None) for text, n in self._generate(prompts)]
        if score_format == "rating":
            out = []
            for p, mass in self._digit_probs(prompts, range(0, 6)):
                expected = float(sum(d * p[d] for d in range(6)))
                if self.cfg.temperature > 0:  # a drawn digit; the expectation is kept beside it
                    text, n = self._sampled_rating(p)
                else:
                    score = round(expected * 2) / 2  # the reply keeps the paper's 0.5 grid
                    text, n = (f"{score}\n(expected {expected:.3f} from digit probabilities "
                               f"{json.dumps([round(x, 4) for x in p])})", 1)
                out.append((text, n, [Expected(expected, mass)]))
            return out
        # pair: Assistant 1's expected score, then Assistant 2's given Assistant 1's argmax.
        # Expectations (not argmax) so that two near-identical distributions rarely tie.
        digits = range(1, 10)
        p1 = self._digit_probs(prompts, digits)
        first = [max(digits, key=lambda d: p[d]) for p, _ in p1]
        p2 = self._digit_probs([pr + f"{d} " for pr, d in zip(prompts, first, strict=True)], digits)
        out = []
        for (a, mass_a), (b, mass_b) in zip(p1, p2, strict=True):
            ea, eb = (float(sum(d * p[d] for d in digits)) for p in (a, b))
            out.append((f"{ea:.1f} {eb:.1f}\n(expected scores over the digits 1-9)", 2,
                        [Expected(ea, mass_a), Expected(eb, mass_b)]))
        return out

    def _sampled_rating(self, p: list[float]) -> tuple[str, int]:
        """At temperature T > 0 the score digit is drawn from the digit distribution raised to
        1/T (what a generating judge does at its first token), not its expectation."""
        import torch

        weights = torch.tensor(p[:6], dtype=torch.float64).clamp_min(1e-300).log()
        drawn = int(torch.multinomial(torch.softmax(weights / self.cfg.temperature, -1), 1))
        return (f"{drawn}\n(sampled at temperature {self.cfg.temperature:g} from digit "
                f"probabilities {json.dumps([round(x, 4) for x in p[:6]])})", 1)

    def _digit_probs(self, prompts: list[str], digits: range) -> list[tuple[list[float], float]]:
        """P(first answer token = d) renormalised over ``digits`` (other digits get 0), and
        the probability the model gave those digits at all (the rest went to other tokens)."""
        import torch

        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.model.device)
        logits = self.model(**enc, use_cache=False).logits[:, -1, :].float()
        allowed = torch.tensor([self.digit_ids[d] for d in digits], device=logits.device)
        masses = torch.softmax(logits, dim=-1)[:, allowed].sum(dim=-1).cpu().tolist()
        probs = torch.softmax(logits[:, allowed], dim=-1).cpu().tolist()
        full = []
        for row, mass in zip(probs, masses, strict=True):
            p = [0.0] * 10
            for d, v in zip(digits, row, strict=True):
                p[d] = v
            full.append((p, mass))
        return full

    def _generate(self, prompts: list[str]) -> list[tuple[str, int]]:
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.model.device)
        do_sample = self.cfg.temperature > 0
        out = self.model.generate(
            **enc, max_new_tokens=self.cfg.max_tokens, do_sample=do_sample,
            temperature=self.cfg.temperature if do_sample else None,
            top_p=self.cfg.top_p if do_sample else None,
            pad_token_id=self.tok.pad_token_id,
        )
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        for row in new:
            ids = [t for t in row.tolist() if t != self.tok.pad_token_id]
            results.append((self.tok.decode(ids, skip_special_tokens=True), len(ids)))
        return results
