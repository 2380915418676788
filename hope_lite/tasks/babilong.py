"""BABILong-style reasoning in a haystack (Kuratov et al. 2024, "BABILong: Testing the Limits of
LLMs with Long Context Reasoning-in-a-Haystack"): bAbI-like facts (Weston et al. 2015) in a
synthetic vocabulary, spread through long distractor text.

Facts are four tokens, ``person verb argument DOT``:

    person MOVE location   "Mary went to the kitchen."  (4 synonyms: moved, went, journeyed, ...)
    person PICK object     "John picked up the apple."   (3 synonyms: picked up, got, grabbed)
    person DROP object     "John dropped the apple."     (3 synonyms: dropped, discarded, put down)

A small world simulator writes ``num_facts`` consistent facts: a person moves to a place other than
where they are, picks up an object nobody holds, or drops one they hold. The facts keep their
order and sit at uniformly random places in essay-like filler (``base.essay_filler``; its words
never name people, places or objects). The row ends ``WHERE entity QMARK``; the target at QMARK is
one location token:

    hops=1 (bAbI qa1, one supporting fact):  "where is <person>?" -> the person's last location
    hops=2 (bAbI qa2, two supporting facts): "where is <object>?" -> its holder's last location,
        or, once dropped, where the dropper was when dropping it

The asked entity is drawn among those whose answer the facts determine. Unlike bAbI qa1, the
1-hop stories also contain pick/drop facts (as distractors), and picking up does not require
being where the object is. Splits are kept apart by content hash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Task, essay_filler
from hope_lite.validate import check_choice, check_int

PAD, DOT, WHERE, QMARK, STOP = 0, 1, 2, 3, 4
MOVE, PICK, DROP = range(5, 9), range(9, 12), range(12, 15)
FIRST_PERSON = 15  # then people, locations, objects, filler words
MAX_MATERIALISE = 1 << 24


@dataclass(frozen=True)
class BabiLong(Task):
    """BABILong-style question answering over facts hidden in long distractor text."""

    hops: int = 1  # 1: "where is <person>?" (qa1-like); 2: "where is <object>?" (qa2-like)
    context_len: int = 1024  # tokens per row; the minimum (no filler) is BABILong's "0k"
    num_facts: int = 10  # facts per story (bAbI stories: roughly 2-20 sentences)
    num_people: int = 4  # bAbI qa1: Mary, John, Daniel, Sandra
    num_locations: int = 6  # bAbI: bathroom, bedroom, garden, hallway, kitchen, office
    num_objects: int = (
        4  # bAbI qa2 uses a handful (apple, football, milk, ...); UNSURE of the count
    )
    num_words: int = 256  # filler words
    seed: int = 0

    layout = "filler .. person verb arg DOT .. filler .. WHERE entity QMARK -> location at QMARK"

    def __post_init__(self) -> None:
        check_choice("hops", self.hops, [1, 2])
        check_int("num_facts", self.num_facts, self.hops)
        check_int("num_people", self.num_people, 1)
        check_int("num_locations", self.num_locations, 2)
        check_int("num_objects", self.num_objects, 1)
        check_int("num_words", self.num_words, 1)
        check_int("seed", self.seed, 0)
        check_int("context_len", self.context_len, 1, MAX_MATERIALISE)
        if self.context_len < 4 * self.num_facts + 3:
            raise ValueError(
                f"context_len={self.context_len} is too short: num_facts={self.num_facts} "
                f"facts and the question take {4 * self.num_facts + 3} tokens"
            )

    name = property(lambda self: f"babilong_{self.hops}hop")  # type: ignore[assignment]
    people = property(lambda self: range(FIRST_PERSON, FIRST_PERSON + self.num_people))
    locations = property(
        lambda self: range(self.people.stop, self.people.stop + self.num_locations)
    )
    objects = property(
        lambda self: range(self.locations.stop, self.locations.stop + self.num_objects)
    )
    vocab_size = property(lambda self: self.objects.stop + self.num_words)  # type: ignore[assignment]

    def _story(self, rng: np.random.Generator) -> tuple[list[tuple[int, int, int]], int, int]:
        """``(facts, entity, answer)``: facts ``(person, verb, arg)`` and an answerable question."""
        for _ in range(1000):
            at, holder, dropped_at, facts = (
                {},
                {},
                {},
                [],
            )  # person -> place, object -> person / place
            for _ in range(self.num_facts):
                p = int(rng.choice(self.people))
                held = [o for o, h in holder.items() if h == p]
                free = [o for o in self.objects if o not in holder]
                r = rng.random()
                if r < 0.25 and held:
                    o = int(rng.choice(held))
                    del holder[o]
                    dropped_at[o] = at.get(p)
                    facts.append((p, int(rng.choice(DROP)), o))
                elif r < 0.5 and free:
                    o = int(rng.choice(free))
                    holder[o] = p
                    dropped_at.pop(o, None)
                    facts.append((p, int(rng.choice(PICK)), o))
                else:
                    at[p] = int(rng.choice([w for w in self.locations if w != at.get(p)]))
                    facts.append((p, int(rng.choice(MOVE)), at[p]))
            if self.hops == 1:
                known = dict(at)
            else:
                known = {
                    o: at.get(holder[o]) if o in holder else dropped_at.get(o) for o in self.objects
                }
            known = {e: a for e, a in known.items() if a is not None}
            if known:
                entity = int(rng.choice(sorted(known)))
                return facts, entity, known[entity]
        raise RuntimeError(
            f"no answerable {self.hops}-hop question in 1000 stories; raise num_facts"
        )

    def _sample(self, count, split, rng):
        F = self.context_len - 4 * self.num_facts - 3  # filler tokens
        filler = essay_filler(rng, count * F, self.objects.stop, self.num_words, STOP).reshape(
            count, F
        )
        x = np.empty((count, self.context_len), dtype=np.int64)
        y = np.full_like(x, IGNORE_INDEX)
        for b in range(count):
            facts, entity, answer = self._story(rng)
            cuts = np.sort(rng.integers(0, F + 1, self.num_facts))
            parts, prev = [], 0
            for cut, fact in zip(cuts, facts):
                parts += [filler[b, prev:cut], np.array([*fact, DOT])]
                prev = cut
            x[b] = np.concatenate(parts + [filler[b, prev:], np.array([WHERE, entity, QMARK])])
            y[b, -1] = answer
        return x, y

    def oracle_row(self, row):
        """Replay the facts read off the tokens; answer the question at QMARK."""
        out, at, holder, dropped_at = [IGNORE_INDEX] * len(row), {}, {}, {}
        for t, tok in enumerate(row):
            if tok in MOVE:
                at[row[t - 1]] = row[t + 1]
            elif tok in PICK:
                holder[row[t + 1]] = row[t - 1]
                dropped_at.pop(row[t + 1], None)
            elif tok in DROP:
                del holder[row[t + 1]]
                dropped_at[row[t + 1]] = at.get(row[t - 1])
            elif tok == QMARK:
                e = row[t - 1]
                out[t] = (
                    at[e] if e in self.people else at[holder[e]] if e in holder else dropped_at[e]
                )
        return out

    def decode(self, row: list[int]) -> str:
        """Readable text of one row, filler words shown as ``w<rank>``."""
        names = {DOT: ".", WHERE: "where is", QMARK: "?", STOP: ".", PAD: "<pad>"}
        names.update(
            {
                v: w
                for r, w in ((MOVE, "went to"), (PICK, "picked up"), (DROP, "dropped"))
                for v in r
            }
        )
        for kind, rng_ in (
            ("person", self.people),
            ("place", self.locations),
            ("object", self.objects),
        ):
            names.update({tok: f"{kind}{i}" for i, tok in enumerate(rng_)})
        return " ".join(names.get(tok, f"w{tok - self.objects.stop}") for tok in row)
