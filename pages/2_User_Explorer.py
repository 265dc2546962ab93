"""User explorer: pick a user; their history; every trained model's top 10 side by side with a reason
per item and the held-out test item marked; how much the models agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data import PROTOCOL
from recsys_core.data.stats import user_history
from recsys_core.explain import explain_items, overlap_matrix, pipeline_each, recommend_each
from recsys_core.pipeline import DEFAULT_CANDIDATES
from recsys_core.serving import Answer, Request
from ui import (
    cached_reason_vectors,
    cached_split,
    cached_user_activity,
    family_of,
    heatmap,
    literal,
    load_trained,
    open_view,
    require_models,
)

K = 10
WHOLE_CATALOGUE = "none: rankers score the whole catalogue"
dataset = open_view("User explorer", "🧑", "User Explorer")
name = dataset.name
versions = require_models(name, "explore")
split = cached_split(name)

activity = cached_user_activity(name)
low, high = int(activity["interactions"].min()), int(activity["interactions"].max())
filters, search = st.columns([1, 2])
if low < high:
    bounds = filters.slider("Users with this many interactions", low, high, (low, high), key="activity")
else:  # every user has as many interactions: nothing to filter by
    bounds = (low, high)
candidates = activity[activity["interactions"].between(*bounds)]
if candidates.empty:
    st.info("No user has that many interactions: widen the range.")
    st.stop()
options = candidates["user_id"].tolist()
counts = dict(zip(activity["user_id"], activity["interactions"], strict=True))
if st.session_state.get("user") not in options:
    st.session_state["user"] = options[0]


def pick_random() -> None:
    st.session_state["user"] = str(np.random.default_rng().choice(options))


user_id = search.selectbox(
    f"User ({len(options):,} match the filter; type to search)",
    options,
    key="user",
    format_func=lambda u: f"{u} · {counts.get(u, 0)} interactions",
)
search.button("Random user", icon=":material/casino:", on_click=pick_random, key="random_user")
user = dataset.user_index(user_id)
test_item = int(split.test_item[user])

st.subheader(f"History of user {literal(user_id)}")
history = user_history(dataset, split, user)
st.dataframe(history.iloc[::-1], hide_index=True, width="stretch", height=240)
if test_item:
    st.caption(
        "Most recent first. The last interaction is held out as the test item: the models below never saw it, "
        "and ✔ marks it where a model recommends it."
    )
    st.text(f"Held-out test item: {dataset.titles([test_item])[0]}")
else:
    st.caption("This user has too few interactions to hold one out: the lists below are plain recommendations.")

artifacts, problems = load_trained(name)
rankers = [m for m in artifacts if family_of(m) == "rankers"]
retrievers = [m for m in artifacts if family_of(m) != "rankers"]
stage_one = None
if rankers and retrievers:
    trained_over = [getattr(artifacts[r].model.config, "candidates_from", None) for r in rankers]
    usual = max(set(trained_over) & set(retrievers), key=trained_over.count, default=None)
    options = [WHOLE_CATALOGUE, *retrievers]
    stage_one = st.selectbox(
        f"Rankers reorder the top {DEFAULT_CANDIDATES} candidates of", options,
        index=options.index(usual) if usual else 0, key="explorer_retriever",
        help="A ranker is the second stage of a pipeline; it can also score the whole catalogue alone.",
    )  # fmt: skip
    stage_one = None if stage_one == WHOLE_CATALOGUE else stage_one
request = Request(user_id, k=K)
answers: dict[str, Answer | str] = dict(problems)
alone = {m: a.model for m, a in artifacts.items() if stage_one is None or m not in rankers}
answers.update(recommend_each(alone, dataset, split, request))
if stage_one is not None:
    answers.update(pipeline_each(artifacts[stage_one].model, {m: artifacts[m].model for m in rankers}, dataset, split,
                                 request))  # fmt: skip
known_history = [int(i) for i in split.input_sequences("test")[user]]

st.subheader(f"Top {K} of every model")
hits = {
    m: a.items.index(str(dataset.item_ids[test_item])) + 1
    for m, a in answers.items()
    if isinstance(a, Answer) and test_item and str(dataset.item_ids[test_item]) in a.items
}
if test_item:
    found = ", ".join(f"{m} (rank {r})" for m, r in sorted(hits.items(), key=lambda x: x[1])) or "no model"
    st.caption(f"The held-out item is in the top {K} of: {found}. Protocol: {PROTOCOL}.")
per_row = 2
names = [m for m in versions if m in answers] + [m for m in answers if m not in versions]
for start in range(0, len(names), per_row):
    for column, model in zip(st.columns(per_row), names[start : start + per_row], strict=False):
        with column:
            answer = answers[model]
            shown = answer.model if isinstance(answer, Answer) else model  # "sasrec+fm" for a ranker in a pipeline
            st.markdown(f"**{shown}** · {family_of(model)}")
            if isinstance(answer, str):
                st.warning(answer)
                continue
            try:
                vectors = cached_reason_vectors(name, model, versions[model])
                reasons, source = explain_items(artifacts[model].model, vectors, dataset, known_history, answer.items)
            except Exception as error:  # a reason is an extra: the list still shows without it
                reasons, source = ["—"] * len(answer.items), f"no reasons ({type(error).__name__}: {error})"
            items = [dataset.item_index(i) for i in answer.items]
            table = pd.DataFrame(
                {
                    "test item": ["✔" if i == test_item else "" for i in items],
                    "title": dataset.titles(items),
                    "score": answer.scores,
                    "because you watched": reasons,
                }
            )
            st.dataframe(
                table,
                hide_index=True,
                width="stretch",
                column_config={
                    "test item": st.column_config.TextColumn(width="small"),
                    "title": st.column_config.TextColumn(width="medium"),
                    "score": st.column_config.NumberColumn(format="%.3f", width="small"),
                    "because you watched": st.column_config.TextColumn(width="large"),
                },
            )
            notes = [answer.fallback] if answer.fallback else []
            st.caption("; ".join([*notes, *answer.notes, f"reasons: {source}"]))

lists = {m: a.items for m, a in answers.items() if isinstance(a, Answer)}
if len(lists) >= 2:
    st.subheader("How much do the models agree?")
    measure = st.radio("Overlap measure", ["Rank-biased overlap", "Jaccard"], horizontal=True, key="overlap")
    matrix = overlap_matrix(lists, "rbo" if measure.startswith("Rank") else "jaccard")
    figure = heatmap(
        matrix.to_numpy(),
        list(matrix.columns),
        list(matrix.index),
        zmax=1,
        text=True,
        title=f"{measure} between the top-{K} lists of user {user_id}",
    )
    st.plotly_chart(figure, width="stretch")
    st.caption(
        "Jaccard: shared items over all items of both lists, order ignored. Rank-biased overlap "
        "(p = 0.9): agreement at every depth, weighted towards the top of the lists."
    )
