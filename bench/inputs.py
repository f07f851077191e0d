"""What the benchmark feeds the filter: the shipped term lists, synthetic extra terms and a query mix.

Everything generated here is deterministic (a fixed seed), so two runs measure the same work.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

from klaswacht.loading import SHIPPED_LISTS, _display, _list_files

ROOT = Path(__file__).resolve().parent.parent
DEV_QUERIES = ROOT / "tests" / "data" / "eval" / "queries.tsv"
SEED = 20240521

# Category of each synthetic term, by share of the lines.
CATEGORY_SHARES = {"coarse": 30, "violence": 20, "sex": 25, "discrimination": 15, "self-harm": 5, "context": 5}

_ONSETS = ("b d g k p t v w z s h j l m n r f " * 3
           + "st sch sl sm sp br dr gr kr pr tr bl fl gl kl pl ch sh th").split()
_NUCLEI = ("a e i o u " * 4 + "aa ee oo ie oe ou ei ij ui au ea ai y").split()
_CODAS = ["", "", "", "", "", "", "n", "n", "r", "l", "k", "t", "s", "m", "ng", "nk", "rt", "st", "ch", "ld",
          "nd", "ft", "p", "x"]
_ENDINGS = ("en|je", "en|tje", "s|en", "e|er", "ing|ingen")


def shipped_term_files() -> list[tuple[str, str, str]]:
    """The shipped term lists as (source, category, text), exactly as klaswacht.loading reads them."""
    files = _list_files(SHIPPED_LISTS)
    return [(_display(path), path.stem, path.read_text(encoding="utf-8"))
            for rel, path in sorted(files.items()) if not rel.startswith("hosts/")]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(syllables))


def _words(rng: random.Random) -> Iterator[str]:
    """An endless stream of distinct made-up words of two to four syllables."""
    seen: set[str] = set()
    while True:
        word = _word(rng, rng.choice((2, 2, 2, 2, 3, 3, 4)))
        if word not in seen and len(word) >= 4:
            seen.add(word)
            yield word


def _term_line(rng: random.Random, words: Iterator[str], category: str, used: list[str]) -> str:
    """One wordlist line in one of the entry forms of filters/terms.py, drawn by share.

    An exception ("!kankerbestrijding") is a compound of an earlier term and a new word.
    """
    if category == "context":
        return f"{next(words)} ={rng.choice((-40, -60, -100))}"
    roll = rng.random()
    if roll >= 0.98 and used:
        return f"!{rng.choice(used)}{next(words)}"
    word = next(words)
    used.append(word)
    forms = (
        (0.52, lambda: word),
        (0.66, lambda: f"{word}*"),
        (0.74, lambda: f"{word}+"),
        (0.76, lambda: f"+{word}"),
        (0.77, lambda: f"*{word}*"),
        (0.80, lambda: f"{word}({rng.choice(_ENDINGS)})"),
        (0.88, lambda: " ".join([word, *(next(words) for _ in range(rng.choice((1, 1, 2))))])),
        (0.93, lambda: f"{word} ={rng.choice((20, 40, 50, 60, 80))}"),
        (0.96, lambda: f"{word} + {next(words)}* =100"),
    )
    for limit, form in forms:
        if roll < limit:
            return form()
    return f"{word}*"


def synthetic_term_files(count: int, seed: int = SEED) -> list[tuple[str, str, str]]:
    """`count` extra wordlist lines, spread over one file per category, as (source, category, text)."""
    rng = random.Random(seed)
    words = _words(rng)
    categories = rng.choices(list(CATEGORY_SHARES), weights=list(CATEGORY_SHARES.values()), k=count)
    lines: dict[str, list[str]] = {c: [] for c in CATEGORY_SHARES}
    used: dict[str, list[str]] = {c: [] for c in CATEGORY_SHARES}
    for category in categories:
        lines[category].append(_term_line(rng, words, category, used[category]))
    return [(f"synthetic/{c}.txt", c, "\n".join(body) + "\n") for c, body in lines.items()]


def write_files(files: list[tuple[str, str, str]], folder: Path) -> list[Path]:
    """Write (source, category, text) files below `folder` as CATEGORY.txt; their paths."""
    paths = []
    for _, category, text in files:
        path = folder / f"{category}.txt"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def read_files(paths: list[Path]) -> list[tuple[str, str, str]]:
    """The (source, category, text) triples of list files named CATEGORY.txt."""
    return [(str(p), p.stem, p.read_text(encoding="utf-8")) for p in paths]


# Ordinary pupils' searches: templates and the words that fill them.
_TEMPLATES = (
    "hoe maak ik een {thing}", "spreekbeurt over {topic}", "werkstuk {topic} groep {n}", "wat is een {thing}",
    "{animal} filmpje", "weer in {city}", "kleurplaat {animal}", "tafels van {n} oefenen", "recept {food}",
    "hoe oud wordt een {animal}", "{game} tips", "vertaling {thing} engels", "{city} bezienswaardigheden",
    "how to draw a {animal}", "{topic} facts for kids", "{game} walkthrough", "easy {food} recipe",
    "{city} weather tomorrow", "what does a {animal} eat", "{topic} worksheet grade {n}", "Wie was {person}",
    "{person} biografie", "{topic} uitleg", "{topic} quiz", "Schooltv {topic}", "{food} calorieën",
    "{animal} in {city} dierentuin", "{person} quotes", "spelling oefenen groep {n}", "{thing} kopen",
)
_FILL = {
    "thing": ("vulkaan", "vlieger", "papieren vliegtuig", "regenboog", "kompas", "windmolen", "zonnestelsel",
              "boomhut", "robot", "kasteel", "bijenkorf", "slime", "raket", "stop-motion film", "poster"),
    "topic": ("de Tweede Wereldoorlog", "klimaatverandering", "de Romeinen", "dinosaurussen", "het heelal",
              "plastic soep", "de Gouden Eeuw", "vulkanen", "photosynthesis", "the water cycle", "ancient Egypt",
              "de Nederlandse Antillen", "breuken", "ridders", "de Middeleeuwen", "renewable energy"),
    "animal": ("olifant", "giraffe", "pinguïn", "egel", "dolfijn", "octopus", "panda", "koala", "vos", "uil",
               "hamster", "cheetah", "tortoise", "sea otter", "zeepaardje"),
    "city": ("Amsterdam", "Rotterdam", "Utrecht", "Groningen", "Maastricht", "Zwolle", "Eindhoven", "Londen",
             "Parijs", "Zürich", "Den Haag", "Almere", "Nijmegen", "Leeuwarden", "Tilburg"),
    "food": ("pannenkoeken", "stamppot", "bananenbrood", "pizza", "oliebollen", "crème brûlée", "poffertjes",
             "appeltaart", "muffins", "tomatensoep", "smoothie", "wraps"),
    "game": ("Minecraft", "Roblox", "Fortnite", "Mario Kart", "Zelda", "Pokémon", "Among Us", "Animal Crossing"),
    "person": ("Anne Frank", "Willem van Oranje", "Michiel de Ruyter", "Marie Curie", "Vincent van Gogh",
               "Rembrandt", "Einstein", "Annie M.G. Schmidt", "Nelson Mandela", "Max Verstappen"),
    "n": tuple(str(i) for i in range(1, 9)),
}


def dev_queries(path: Path = DEV_QUERIES) -> list[str]:
    """The 'query' column of the labelled development set."""
    with path.open(encoding="utf-8", newline="") as f:
        return [row["query"] for row in csv.DictReader(f, delimiter="\t")]


def ordinary_queries(count: int, seed: int = SEED) -> list[str]:
    """`count` generated everyday searches, Dutch and English."""
    rng = random.Random(seed)
    return [rng.choice(_TEMPLATES).format(**{k: rng.choice(v) for k, v in _FILL.items()}) for _ in range(count)]


def query_mix(ordinary: int = 2000, seed: int = SEED) -> list[str]:
    """The dev-set queries plus `ordinary` generated ones, shuffled."""
    queries = dev_queries() + ordinary_queries(ordinary, seed)
    random.Random(seed).shuffle(queries)
    return queries
