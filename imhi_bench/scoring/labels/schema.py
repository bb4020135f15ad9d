"""Label schemas of the IMHI sets: each set's classes as the released gold responses phrase
them (read strictly by `gold`) and the free-text aliases and concepts the reader looks for
(`reader`), plus the gold label sentence of a class (`label_sentence`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imhi_bench.benchmark.sets import SETS, get_set


@dataclass(frozen=True)
class LabelSchema:
    set: str
    # class -> gold label sentences as released (instruction, completion), lower-case,
    # without the final full stop
    gold_phrases: dict[str, tuple[str, ...]]
    # multi-class: class -> regex fragments naming the class in free text
    aliases: dict[str, tuple[str, ...]]
    # binary: regex fragment naming the concept the question asks about
    concept: str = ""
    # multi-class: the class meaning "none of the others" ("no mental disorders"), and the
    # generic concept whose negation states it ("no signs of a mental disorder")
    none_class: str | None = None
    none_concept: str = ""
    # multi-class: class -> regex fragments naming a relation that states the class, read
    # like aliases but reported as the "relative" rule (SAD: strain with a relative is
    # family issues, not social relationships)
    relations: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def classes(self) -> tuple[str, ...]:
        return SETS[self.set].classes


def _binary(name: str, yes: str, no: str, concept: str) -> LabelSchema:
    return LabelSchema(name, {"yes": (yes, "yes"), "no": (no, "no")}, {}, concept=concept)


_NO_DISORDER = (
    r"no mental (?:disorders?|illness\w*)(?: symptoms?)?",
    r"control (?:group|class|category|condition)",
    r"\(control\)",
    r"['\"]?control['\"]?(?=\s*[.!]?\s*$)",
)
_DISORDER = (
    r"mental health|mental (?:disorders?|illness\w*|conditions?)|psychiatric (?:disorders?|"
    r"conditions?|symptoms?|issues?)|psychological distress|disorders?"
)

# A relative: a parent, sibling, child, grandparent ..., in-laws, a partner's family.
_KIN = (
    r"(?:(?:step|grand|great[- ]?grand)?(?:mother|father|parent|mom|mum|dad)s?|grandm(?:a|om)s?"
    r"|grandpas?|(?:step|half[- ]?)?(?:brother|sister|sibling|son|daughter)s?|child(?:ren)?"
    r"|kids?|aunts?|uncles?|cousins?|nieces?|nephews?|relatives?|famil(?:y|ies)(?: members?)?"
    r"|in[- ]laws?"
    r"|(?:mother|father|brother|sister|son|daughter)s?[- ]in[- ]law)"
)
# strain with someone: "relationship with", "tension between the poster and", "argues with"
_STRAIN = (
    r"(?:relationships?|relations|tensions?|conflicts?|strain|problems?|issues?|troubles?"
    r"|difficult(?:y|ies)|arguments?|argu(?:e|es|ed|ing)|fights?|fighting|fought|disputes?"
    r"|disagreements?|falling[- ]out|friction|clash(?:es|ed|ing)?)"
    r"\s+(?:with|between\s+(?:[\w'-]+\s+){0,3}?and)\s+"
)
# up to two words before the relative ("their older", "her boyfriend's"), not a new item
_OWNER = r"(?:(?!and\b|or\b)[\w'-]+\s+){0,2}?"
_RELATION_WITH_KIN = _STRAIN + _OWNER + _KIN

_SCHEMAS: dict[str, LabelSchema] = {
    s.set: s
    for s in (
        _binary("CLP", "yes, the poster suffers from depression",
                "no, the poster does not suffer from depression", r"depress\w*"),
        _binary("DR", "yes, the poster suffers from depression",
                "no, the poster does not suffer from depression", r"depress\w*"),
        _binary("dreaddit", "yes, the poster suffers from stress",
                "no, the poster does not suffer from stress", r"stress\w*"),
        _binary("loneliness", "yes, the poster suffers from loneliness",
                "no, the poster does not suffer from loneliness", r"lonel\w*|isolat\w*|alone"),
        _binary("Irf", "yes, the post shows this risk", "no, the post does not show this risk",
                r"risks?|thwarted belongingness|perceived burdensomeness|belong\w*|burden\w*"
                r"|connectedness"),
        _binary("MultiWD", "yes, this wellness dimension exists in the post",
                "no, this wellness dimension does not exist in the post",
                # the dimension by name or by the definition the IMHI explanations use
                r"(?:wellness )?dimensions?|wellness|(?:spiritual|physical|intellectual|social"
                r"|vocational|emotional) aspects?|meaning (?:or|and|of) (?:\w+ )?purpose|"
                r"interdependence|(?:work|career)(?: or career)?[- ]related|healthy habits|"
                r"intellectual(?: or cultural)? (?:activit\w*|pursuits?|growth)"),
        LabelSchema(
            "CAMS",
            {
                "none": ("this post shows no causes of depression", "none"),
                **{c: (f"this post shows causes of depression related to {c}", c)
                   for c in ("bias or abuse", "jobs and career", "medication", "relationship",
                             "alienation")},
            },
            {
                "none": (r"no causes?(?: of depression)?", r"none"),
                "bias or abuse": (r"bias or abuse", r"bias\w*", r"abus\w*", r"discriminat\w*",
                                  r"bull(?:y|ied|ying)"),
                "jobs and career": (r"jobs? and careers?", r"jobs?", r"careers?",
                                    r"(?:un)?employ\w*", r"workplace", r"work"),
                "medication": (r"medications?", r"medicines?", r"medical", r"meds"),
                "relationship": (r"relationships?", r"romantic", r"break ?ups?", r"divorce\w*"),
                "alienation": (r"alienat\w*", r"isolat\w*", r"loneliness", r"lonely"),
            },
            none_class="none",
            none_concept=r"causes?(?: (?:of|for) (?:the |their |his |her )?depression)?",
        ),
        LabelSchema(
            "SAD",
            {
                **{c: (f"this post shows the stress cause related to {c}", c)
                   for c in ("school", "financial problem", "family issues",
                             "social relationships", "work", "health issues",
                             "everyday decision making")},
                "emotion turmoil": ("this post shows the stress cause related to emotion turmoil",
                                    "emotional turmoil", "emotion turmoil"),
                "other stress causes": ("this post shows other stress causes", "other causes",
                                        "other stress causes"),
            },
            {
                "school": (r"school\w*", r"academic\w*", r"exams?", r"college", r"university",
                           r"homework", r"education\w*", r"studies", r"grades"),
                "financial problem": (r"financ\w*", r"money", r"debts?", r"bills"),
                "family issues": (r"family issues?", r"family", r"families", r"parents?"),
                "social relationships": (r"social relationships?", r"relationships?",
                                         r"friends?", r"friendships?", r"social"),
                "work": (r"work", r"workplace", r"job\w*", r"careers?", r"(?:un)?employ\w*",
                         r"boss", r"co-?workers?"),
                "health issues": (r"health(?: issues?| problems?)?", r"illness\w*",
                                  r"sickness", r"medical", r"diseases?", r"injur\w*"),
                "emotion turmoil": (r"emotion(?:al)? turmoil", r"turmoil",
                                    r"emotional (?:distress|struggles?|issues?)"),
                "everyday decision making": (r"(?:everyday |daily )?decision[- ]making",
                                             r"decisions?"),
                "other stress causes": (r"other (?:stress )?causes?(?: of stress)?",
                                        r"other (?:category|reasons?)",
                                        r"['\"]?other['\"]?(?=\s*[.!]?\s*$)"),
            },
            relations={"family issues": (_RELATION_WITH_KIN,)},
        ),
        LabelSchema(
            "swmh",
            {
                **{c: (f"this post shows mental disorder symptoms related to {c}", c)
                   for c in ("depression", "suicide", "anxiety", "bipolar disorder")},
                "no mental disorder": ("this post shows no mental disorder symptoms",
                                       "no mental disorder", "no mental disorders"),
            },
            {
                "depression": (r"depress\w*",),
                "suicide": (r"suicid\w*", r"self[- ]harm\w*"),
                "anxiety": (r"anxi\w*", r"panic"),
                "bipolar disorder": (r"bipolar\w*(?: disorder)?", r"mania", r"manic"),
                "no mental disorder": _NO_DISORDER,
            },
            none_class="no mental disorder",
            none_concept=_DISORDER,
        ),
        LabelSchema(
            "t-sid",
            {
                "depression": ("this post shows depression", "depression"),
                "suicide or self-harm tendency": ("this post shows suicide or self-harm tendency",
                                                  "suicide or self-harm tendency"),
                "PTSD": ("this post shows ptsd", "ptsd"),
                "no mental disorders": ("this post shows no mental disorders",
                                        "no mental disorders"),
            },
            {
                "depression": (r"depress\w*",),
                "suicide or self-harm tendency": (r"suicid\w*(?: or self[- ]harm(?: tendenc\w*)?)?",
                                                  r"self[- ]harm\w*"),
                "PTSD": (r"ptsd", r"post[- ]?traumatic stress(?: disorder)?"),
                "no mental disorders": _NO_DISORDER,
            },
            none_class="no mental disorders",
            none_concept=_DISORDER,
        ),
    )
}

assert set(_SCHEMAS) == set(SETS), "every IMHI set needs a label schema"
for _s in _SCHEMAS.values():
    assert tuple(sorted(_s.gold_phrases)) == tuple(sorted(_s.classes)), _s.set
    assert _s.concept or tuple(sorted(_s.aliases)) == tuple(sorted(_s.classes)), _s.set


def schema(set_name: str) -> LabelSchema:
    return _SCHEMAS[get_set(set_name).name]


def label_sentence(set_name: str, cls: str) -> str:
    """The instruction-format gold label sentence of a class, as the data spells it."""
    phrase = schema(set_name).gold_phrases[cls][0]
    return phrase[0].upper() + phrase[1:].replace(" ptsd", " PTSD") + "."

