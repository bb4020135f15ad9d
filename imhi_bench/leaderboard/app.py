"""The IMHI leaderboard, a Streamlit app: `imhi-bench leaderboard [--db URL]`, or
`streamlit run leaderboard/app.py` with the store in $IMHI_DB_URL.

Pages: the main table, one model's run, two runs compared, and the submission queue.
Data comes from `imhi_bench.leaderboard.data` (the main table), `.run_data` (one run,
two runs compared) and `.queue_data`; this module only lays it out.  Anything that
came from users or models (names, posts, generations, submission errors) is shown as text:
st.text, st.code, st.dataframe, st.json, never st.markdown or st.table (which render
Markdown).  Store-wide frames are cached under a fingerprint of the store, so a new run
shows on the next page load; the queue is read afresh on every load.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from imhi_bench.benchmark.sets import NON_CLINICAL_NOTICE, SET_NAMES
from imhi_bench.core.errors import ImhiError
from imhi_bench.leaderboard import (
    band_data,
    data,
    errors_page,
    paired_page,
    protocols,
    queue_data,
    run_data,
    unreadable,
    widgets,
)
from imhi_bench.leaderboard.page_guard import guarded
from imhi_bench.store.engine import display_url, open_store, resolve_db_url, store_engine
from imhi_bench.store.reported import NOT_LOADED

PAGES: tuple[str, ...] = ("Leaderboard", "Model", "Compare", "Queue")
SAMPLES_PER_PAGE = 25

FIRST_RESULT_HELP = """\
Record a first result:
  imhi-bench db init                                   # create the store, load the paper rows
  imhi-bench score --predictions DIR --name MY-MODEL   # score existing generations
  imhi-bench eval ...                                  # or generate and score in one go
then reload this page."""


@st.cache_resource(show_spinner=False)
def _engine(url: str):
    return store_engine(open_store(url))


@st.cache_data(show_spinner=False, max_entries=4)
def _frames(url: str, fingerprint: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    engine = _engine(url)
    return data.load_runs(engine), data.load_scores(engine)


@st.cache_data(show_spinner=False, max_entries=16)
def _table(url: str, fingerprint: tuple, group: str, latest_only: bool,
           include_partial: bool, protocol: str) -> pd.DataFrame:
    runs, scores = _frames(url, fingerprint)
    table = data.leaderboard_table(runs, scores, sets=data.SET_GROUPS[group],
                                   latest_only=latest_only, include_partial=include_partial,
                                   protocol=protocol)
    return band_data.with_rank_bands(_engine(url), table, data.SET_GROUPS[group])


# --------------------------------------------------------------------------- pages


def leaderboard_page(url: str, fingerprint: tuple, runs: pd.DataFrame) -> None:
    side = st.sidebar
    default = data.View()  # the first view, as `imhi-bench leaderboard --csv` writes it
    groups = list(data.SET_GROUPS)
    group = side.radio("Sets", groups, index=groups.index(default.group), key="group",
                       help="which sets the per-set columns and the ranked mean cover: "
                       "every ranked mean is over all of them")
    latest = side.checkbox("Newest run per model and setting only", value=default.latest_only,
                           key="latest")
    partial = side.checkbox(
        "Show partial runs (greyed, not ranked)", value=default.include_partial,
        key="partial", help="runs that did not score every sample of every set they claim "
        "(--limit, a set cut short) or whose coverage is unknown; listed after the ranked "
        "rows")
    choices = protocols.protocol_choices(runs)
    labels = {c.id: f"{c.name} ({c.runs} run{'' if c.runs == 1 else 's'})" for c in choices}
    labels[data.ALL_PROTOCOLS] = "all protocols (mixed: each row names its protocol)"
    protocol = side.selectbox(
        "Protocol", list(labels), index=0, key="protocol", format_func=labels.__getitem__,
        help="how the numbers were made (prompt, chat template, few-shot, decoding, label "
        "reader, metric variants, data): only runs of one protocol are ranked together. "
        "'default' is the paper's protocol as far as this tool runs it; the others are "
        "named by what differs from it. `imhi-bench protocol show` prints one.")
    table = _table(url, fingerprint, group, latest, partial, protocol)

    search = st.text_input("Search models", key="search",
                           placeholder="name, path / hub id, or base model")
    options = data.filter_options(runs)
    # Empty means "all": a new type or format recorded later is then shown, not hidden
    # behind a selection made before it existed.
    chosen = {
        name: side.multiselect(name.capitalize(), options[name], default=[], key=key,
                               placeholder="all")
        for name, key in (("source", "sources"), ("type", "types"),
                          ("training data", "training"), ("format", "formats"))
    }
    size_range = None
    if options["size"] and options["size"][0] < options["size"][1]:
        lo, hi = options["size"]
        size_range = side.slider("Size (billions of parameters)", min_value=lo, max_value=hi,
                                 value=(lo, hi), key="size")
    unknown = side.checkbox("Include models of unknown size", value=True, key="unknown_size")
    info = side.multiselect("Columns", list(data.INFO_COLUMNS), default=list(default.columns),
                            key="columns")
    sortable = data.visible_columns(info, data.SET_GROUPS[group])
    sort_by = side.selectbox("Sort by", sortable, key="sort_by",
                             index=sortable.index(default.sort_by)
                             if default.sort_by in sortable else 0)
    descending = side.checkbox("Descending", value=default.descending, key="descending")

    view_spec = data.View(
        group=group, protocol=protocol, latest_only=latest, include_partial=partial,
        filters=data.Filters(search=search, types=chosen["type"], size_range=size_range,
                             include_unknown_size=unknown,
                             training_data=chosen["training data"],
                             formats=chosen["format"], sources=chosen["source"]),
        columns=info, sort_by=sort_by, descending=descending)
    view = data.shape(table, view_spec)
    ranked = table.loc[view.index, data.RANKED]
    sets = data.SET_GROUPS[group]
    mixed = protocol == data.ALL_PROTOCOLS
    st.caption(
        f"{len(view)} of {len(table)} runs shown. "
        + ("All protocols mixed: numbers made differently do not compare; the 'protocol' "
           "column says how each was made. " if mixed else
           f"Protocol: {labels[protocol]}; only its runs are ranked together. ")
        + "Ranked: complete runs (every sample of "
        f"every set they claim), by weighted F1 (percent) averaged over "
        f"the same {len(sets)} sets ({', '.join(sets)}); a row missing one of them has no "
        f"mean ({widgets.MISSING}) and comes last. '{data.OWN_MEAN_COLUMN}' is each row's own mean "
        "over every set it scored (for a paper row, the paper's), not ranked. "
        "Labels are read from the generated text by rules (the paper: MentalBERT "
        "classifiers), macro F1 averages over the gold classes and an unreadable answer "
        "counts as wrong. "
        + band_data.BAND_NOTE
        + (" Greyed rows are partial, of unknown coverage or flagged by the contamination "
           "check: listed after the ranked ones, not ranked." if partial else ""))
    if note := unreadable.store_note(*_frames(url, fingerprint)):
        st.caption(note)
    if table.empty and not partial and not runs["complete"].eq(True).all():
        st.info("No complete run scored these sets yet: tick 'Show partial runs' to list the "
                "partial ones (not ranked).")
    st.dataframe(widgets.greyed(view, ranked), hide_index=True,
                 column_config=widgets.column_config(view),
                 key="table", placeholder=widgets.MISSING, height=widgets.height(len(view)))
    # A callable: the CSV is only built when someone clicks.
    # every column (`data.CSV_COLUMNS`), not only the grid's, with the stored values
    st.download_button("Download CSV",
                       lambda: data.to_csv_bytes(data.shape(table, view_spec, csv=True)),
                       file_name="imhi-leaderboard.csv", mime="text/csv", key="csv")
    if not mixed:
        _, scores = _frames(url, fingerprint)
        paper = protocols.reported_table(runs, scores, sets)
        if not paper.empty:
            st.subheader("The paper's reported numbers (references, not ranked)")
            st.caption(f"Protocol: {protocols.REPORTED_NAME}. Made another way than the "
                       "ranked rows above, so read them beside the ranking, not in it.")
            # one protocol in every row, named in the caption: left at its own width
            st.dataframe(paper, hide_index=True,
                         column_config=widgets.column_config(paper, shared=("model",)),
                         key="paper", placeholder=widgets.MISSING,
                         height=widgets.height(len(paper)))


def _run_picker(runs: pd.DataFrame, label: str, key: str, index: int = 0) -> int:
    labels = {int(r.run_id): data.run_label(r._asdict()) for r in runs.itertuples(index=False)}
    ids = sorted(labels, key=lambda i: labels[i].lower())
    return st.selectbox(label, ids, index=min(index, len(ids) - 1), key=key,
                        format_func=labels.__getitem__)


def _bar_chart(frame: pd.DataFrame, value: str, color: str | None = None) -> alt.Chart:
    order = [s for s in SET_NAMES if s in set(frame["set"])]
    base = alt.Chart(frame).encode(x=alt.X("set:N", sort=order, title="set"))
    if color is None:
        bars = base.mark_bar().encode(
            y=alt.Y(f"{value}:Q", title="weighted F1 (%)", scale=alt.Scale(domain=[0, 100])),
            tooltip=["set", value],
        )
        if "ci_low" in frame and frame["ci_low"].notna().any():
            ci = base.mark_rule(color="black").encode(y="ci_low:Q", y2="ci_high:Q")
            return (bars + ci).properties(height=320)
        return bars.properties(height=320)
    return base.mark_bar().encode(
        xOffset=f"{color}:N",
        y=alt.Y(f"{value}:Q", title="weighted F1 (%)", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color(f"{color}:N", title=None),
        tooltip=["set", color, value],
    ).properties(height=320)


def _rank_text(url: str, fingerprint: tuple, run_id: int, protocol_id: str) -> str:
    # the first view of the ranking of the run's own protocol, as the main page shows it
    table = _table(url, fingerprint, data.DEFAULT_GROUP, True, False, protocol_id)
    return run_data.rank_text(table, data.View(protocol=protocol_id), run_id)


def model_page(url: str, fingerprint: tuple, runs: pd.DataFrame) -> None:
    run_id = _run_picker(runs, "Model run", key="model_run")
    engine = _engine(url)
    details = run_data.run_details(engine, run_id)
    if details is None:  # removed since the page loaded
        st.info("This run is no longer in the store: reload the page.")
        return
    model, run = details["model"], details["run"]
    st.subheader("Model")
    st.text(model["name"])
    if run["source"] == "reported":
        st.text(f"Reported by the paper, not reproduced here: {run['reference']}")
    # What a reader came for first: the mean with its CI, the rank, the per-set chart.
    metrics = run_data.run_results(engine, run_id)
    mean, rank = st.columns(2)
    mean.metric("Mean weighted F1 (%), over the sets it scored",
                run_data.mean_value(details["mean"], metrics),
                help="its mean as scored; the leaderboard ranks by the mean over "
                f"{len(data.RANKED_SETS)} sets ({', '.join(data.RANKED_SETS)})")
    mean.caption(run_data.mean_ci_text(details["mean"]))
    rank.metric(f"Rank ({data.DEFAULT_GROUP}, its protocol)",
                _rank_text(url, fingerprint, run_id, runs.set_index("run_id")
                           .at[run_id, "protocol_id"]),
                help="its place on the leaderboard's first view, among the runs of its "
                "protocol; none when partial, missing a ranked set, or a newer run of the "
                "same model and setting is ranked")
    if metrics["weighted_f1"].notna().any():
        st.altair_chart(_bar_chart(metrics, "weighted_f1"), key="chart")
    st.text("Coverage: " + data.coverage_badge(run["complete"], run["coverage"])
            + ("" if run["complete"] else " (not ranked on the leaderboard)"))
    protocol = details["protocol"]
    st.text(f"Protocol: {protocol.get('name', 'unknown')} ({protocol.get('id', '–')}): "
            "ranked only beside runs of the same protocol")
    with st.expander("How these numbers were made (the protocol's fields)"):
        st.dataframe(pd.DataFrame({"field": [k for k in protocol if k not in ("id", "name")],
                                   "value": [widgets.as_text(v) for k, v in protocol.items()
                                             if k not in ("id", "name")]}),
                     hide_index=True, key="protocol_fields", placeholder=widgets.MISSING)
    facts = {**{k: v for k, v in model.items() if k != "name"},
             "size": data.size_label(model["params"]), **run}
    facts = {k: widgets.as_text(v) for k, v in facts.items() if widgets.as_text(v)}
    facts.update(dict.fromkeys(details["unreadable"], widgets.MISSING))
    with st.expander("The run's fields (path, ids, times, ...)"):
        st.dataframe(pd.DataFrame({"field": list(facts), "value": list(facts.values())}),
                     hide_index=True, key="facts", placeholder=widgets.MISSING,
                     height=widgets.height(len(facts)))

    st.subheader("Per-set results")
    percent = ("weighted_f1", "ci_low", "ci_high", "accuracy", "macro_f1",
               *run_data.QUALITY_TITLES.values())
    st.dataframe(metrics, hide_index=True, key="metrics", placeholder=widgets.MISSING,
                 height=widgets.height(len(metrics)),
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in percent if c in metrics})
    if note := unreadable.run_note(details["unreadable"], metrics):
        st.caption(note)
    if details["mean"]:
        st.text("Mean over sets (as scored): " + run_data.mean_text(details["mean"]))

    errors_page.show_errors(engine, run_id, height=widgets.height, missing=widgets.MISSING)

    st.subheader("Provenance")
    st.json({"provenance": details["provenance"],
             "generation_config": details["generation_config"]}, expanded=False)

    st.subheader("Samples")
    sets = run_data.sample_sets(engine, run_id)
    if not sets:
        st.info("No samples are stored for this run.")
        return
    left, mid, right = st.columns(3)
    chosen = left.selectbox("Set", ["all sets", *sets], key="sample_set")
    wrong = mid.checkbox("Wrong only", key="wrong_only")
    _, total = run_data.load_samples(engine, run_id, set_name=None if chosen == "all sets"
                                 else chosen, wrong_only=wrong, limit=1)
    pages = max(1, -(-total // SAMPLES_PER_PAGE))
    page = right.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1,
                              key="sample_page")
    frame, total = run_data.load_samples(
        engine, run_id, set_name=None if chosen == "all sets" else chosen, wrong_only=wrong,
        limit=SAMPLES_PER_PAGE, offset=(int(page) - 1) * SAMPLES_PER_PAGE,
    )
    st.caption(f"{total} samples match.")
    if frame.empty:
        return
    listing = frame[["set", "doc_id", "gold_label", "label", "correct"]]
    st.dataframe(listing, hide_index=True, key="samples", placeholder=widgets.MISSING,
                 height=widgets.height(len(listing)))
    keys = list(range(len(frame)))
    pick = st.selectbox("Sample", keys, key="sample_pick", format_func=lambda i: (
        f"{frame['set'].iat[i]} doc {frame['doc_id'].iat[i]}"))
    row = frame.iloc[pick]
    verdict = {True: "correct", False: "wrong"}.get(row["correct"], "not judged")
    label = widgets.as_text(row["label"]) or "(none: unparseable)"
    st.text(f"gold label: {widgets.as_text(row['gold_label'])}   extracted label: {label}   "
            f"({verdict})")
    for field, title in (("post", "Post (the prompt)"), ("generation", "Generation"),
                         ("gold", "Gold response")):
        st.caption(title)
        st.code(widgets.as_text(row[field]), language=None, wrap_lines=True)


def compare_page(url: str, runs: pd.DataFrame) -> None:
    if len(runs) < 2:
        st.info("Comparing needs two runs in the store.")
        return
    left, right = st.columns(2)
    with left:
        run_a = _run_picker(runs, "Run A", key="compare_a", index=0)
    with right:
        run_b = _run_picker(runs, "Run B", key="compare_b", index=1)
    labels = {int(r.run_id): data.run_label(r._asdict()) for r in runs.itertuples(index=False)}
    st.text(f"A: {labels[run_a]}\nB: {labels[run_b]}")
    engine = _engine(url)
    table = run_data.compare_runs(run_data.run_results(engine, run_a),
                                  run_data.run_results(engine, run_b))
    if table.empty:
        st.info("Neither run has per-set results.")
        return
    st.dataframe(table, hide_index=True, key="compare_table", placeholder=widgets.MISSING,
                 height=widgets.height(len(table)),
                 column_config={c: st.column_config.NumberColumn(format="%.2f")
                                for c in ("A weighted F1", "B weighted F1", "B - A")})
    long = pd.concat([
        pd.DataFrame({"set": table["set"], "run": "A", "weighted F1": table["A weighted F1"]}),
        pd.DataFrame({"set": table["set"], "run": "B", "weighted F1": table["B weighted F1"]}),
    ]).dropna()
    st.altair_chart(_bar_chart(long, "weighted F1", color="run"), key="compare_chart")
    paired_page.show_paired(engine, run_a, run_b, height=widgets.height, missing=widgets.MISSING)


QUEUE_HELP = """\
Queue a model:
  imhi-bench submit --model PATH_OR_ID --name NAME   # checked, pinned, queued as PENDING
  imhi-bench worker --drain                          # evaluates the queue, each exactly once
  imhi-bench status                                  # the queue in a terminal
See submissions/README.md."""


def queue_page(url: str) -> None:
    # Not cached: the queue changes while people watch it, and the query is small.
    queue = queue_data.load_queue(_engine(url))
    if queue.empty:
        st.info("No submissions yet.")
        st.code(QUEUE_HELP, language=None)
        return
    counts = queue["status"].value_counts()
    st.caption(", ".join(f"{int(counts.get(s, 0))} {s.lower()}"
                         for s, _ in queue_data.QUEUE_SECTIONS))
    # Names, paths and error messages come from submitters: dataframes show them as text.
    for status, title in queue_data.QUEUE_SECTIONS:
        part = queue_data.queue_section(queue, status)
        st.subheader(f"{title} ({len(part)})")
        if part.empty:
            st.text("none")
        else:
            st.dataframe(part, hide_index=True, key=f"queue_{status.lower()}",
                         placeholder=widgets.MISSING, height=widgets.height(len(part)))
    st.code(QUEUE_HELP, language=None)


def empty_store(url: str) -> None:
    st.info("The results store is empty.")
    st.info(NOT_LOADED)
    st.code(FIRST_RESULT_HELP, language=None)
    st.text(f"Store: {display_url(url)}")


# --------------------------------------------------------------------------- entry


@guarded
def main() -> None:
    st.set_page_config(page_title="IMHI leaderboard", layout="wide")
    st.title("IMHI leaderboard")
    # Every page, before anything can fail: these numbers are research results only.
    st.warning(NON_CLINICAL_NOTICE, icon="⚠️")
    try:
        url = resolve_db_url()
        fingerprint = data.store_fingerprint(_engine(url))
    except ImhiError as e:
        st.error("Cannot open the results store.")
        st.text(str(e))
        return
    page = st.sidebar.radio("Page", PAGES, key="page")
    if page == "Queue":  # the queue has its own empty state, runs or not
        st.sidebar.text(f"Store: {display_url(url)}")
        queue_page(url)
        return
    runs, _ = _frames(url, fingerprint)
    if runs.empty:
        empty_store(url)
        return
    st.sidebar.text(f"Store: {display_url(url)}")
    if not (runs["source"] == "reported").any():
        # A new store is created empty: the paper's rows come only from `db init`.
        st.info(NOT_LOADED)
    if not (runs["source"] == "reproduced").any():
        st.info("Only the paper's reported rows so far.")
        st.code(FIRST_RESULT_HELP, language=None)
    if page == "Leaderboard":
        leaderboard_page(url, fingerprint, runs)
    elif page == "Model":
        model_page(url, fingerprint, runs)
    else:
        compare_page(url, runs)


if __name__ == "__main__":
    main()
