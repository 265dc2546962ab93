"""User explorer: pick a user; their history; every trained model's top 10 side by side with a reason
per item and the held-out test item marked; how much the models agree."""

from __future__ import annotations

import numpy as np
import streamlit as st

from recsys_core.data.stats import user_history
from recsys_core.models import rankers, retrievers
from recsys_core.serving.explain import answer_each, usual_retriever
from recsys_core.serving.pipeline import DEFAULT_CANDIDATES
from recsys_core.serving.recommend import Answer, Request
from ui import (
    agreement_map,
    answer_column,
    cached_split,
    cached_user_activity,
    held_out_caption,
    literal,
    load_trained,
    open_view,
    require_models,
    trained_among,
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
st.dataframe(user_history(dataset, split, user).iloc[::-1], hide_index=True, width="stretch", height=240)
if test_item:
    st.caption(
        "Most recent first. The last interaction is held out as the test item: the models below never saw it, "
        "and ✔ marks it where a model recommends it."
    )
    st.text(f"Held-out test item: {dataset.titles([test_item])[0]}")
else:
    st.caption("This user has too few interactions to hold one out: the lists below are plain recommendations.")

artifacts, problems = load_trained(name)
ranker_names, retriever_names = trained_among(artifacts, rankers()), trained_among(artifacts, retrievers())
retriever = None
if ranker_names and retriever_names:
    usual = usual_retriever([artifacts[m].model for m in ranker_names], retriever_names)
    choices = [WHOLE_CATALOGUE, *retriever_names]
    retriever = st.selectbox(
        f"Rankers reorder the top {DEFAULT_CANDIDATES} candidates of", choices,
        index=choices.index(usual) if usual else 0, key="explorer_retriever",
        help="A ranker is the second stage of a pipeline; it can also score the whole catalogue alone.",
    )  # fmt: skip
models = {m: a.model for m, a in artifacts.items()}
over = None if retriever in (None, WHOLE_CATALOGUE) else models[retriever]
answers: dict[str, Answer | str] = {**problems, **answer_each(models, dataset, split, Request(user_id, k=K), over)}
known_history = [int(i) for i in split.input_sequences("test")[user]]

st.subheader(f"Top {K} of every model")
if test_item:
    held_out_caption(answers, str(dataset.item_ids[test_item]), K)
names = [m for m in versions if m in answers] + [m for m in answers if m not in versions]
for start in range(0, len(names), 2):
    for column, model in zip(st.columns(2), names[start : start + 2], strict=False):
        with column:
            version = artifacts[model].version if model in artifacts else ""  # "": a model that failed to load
            answer_column(dataset, model, version, answers[model], known_history, test_item)

agreement_map({m: a.items for m, a in answers.items() if isinstance(a, Answer)}, user_id, K)
