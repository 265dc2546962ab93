"""Pipeline: one user's request through retriever -> (FAISS index) -> N candidates -> ranker -> top
K, measured live: latency per stage, ANN recall against exact search, where the held-out item sits
at each stage, and the final list next to the retriever's own. The retriever, ranker, N and user
are in the URL, so the view can be shared."""

from __future__ import annotations

import numpy as np
import streamlit as st

from recsys_core.data import PROTOCOL
from recsys_core.models import rankers, retrievers
from recsys_core.serving.pipeline import DEFAULT_CANDIDATES, trace_request
from recsys_core.serving.retriever import load_or_build_index
from recsys_core.store.artifacts import ArtifactError
from ui import (
    both_lists,
    cached_artifact,
    cached_split,
    copy_link,
    from_link,
    funnel_chart,
    funnel_metrics,
    index_controls,
    latency_metrics,
    literal,
    open_view,
    require_models,
    stored_funnels,
    to_link,
    trained_among,
    user_box,
)

K = 10
CANDIDATES = [20, 50, 100, 200, 500, 1000]
NO_RANKER = "none (retriever only)"
NO_RANKER_LINK = "none"  # ?ranker=none: the retriever's list alone
dataset = open_view("Two-stage pipeline")
name = dataset.name
versions = require_models(name, "run a pipeline with")
split = cached_split(name)
st.caption(
    "A retriever scores the whole catalogue (exactly, or through a FAISS index) and keeps N candidates, "
    "never the user's history; a ranker reorders only those. Everything below is measured now, for one user."
)

retriever_names, ranker_names = trained_among(versions, retrievers()), trained_among(versions, rankers())
if not retriever_names:
    st.info("No retriever is trained yet (any model that is not a ranker): train sasrec or two_tower first.")
    st.stop()
linked = {param: from_link(param) for param in ("retriever", "ranker", "candidates", "user")}
choices = {"retriever": {r: r for r in retriever_names}, "candidates": {str(n): n for n in CANDIDATES},
           "ranker": {NO_RANKER_LINK: NO_RANKER, **{r: r for r in ranker_names}}}  # fmt: skip
for param, key in (("retriever", "pipe_retriever"), ("ranker", "pipe_ranker"), ("candidates", "pipe_n")):
    if linked[param] is not None and linked[param] not in choices[param]:
        st.warning(f"The link's {param} {literal(linked[param])} is not available on {name}: using the default.")
    elif linked[param] is not None:
        st.session_state[key] = choices[param][linked[param]]
stage_one, index_box, params_box, stage_two = st.columns(4)
first = retriever_names.index("sasrec") if "sasrec" in retriever_names else 0
if st.session_state.get("pipe_retriever") not in retriever_names:
    st.session_state["pipe_retriever"] = retriever_names[first]
retriever_name = stage_one.selectbox("Retriever", retriever_names, key="pipe_retriever")
try:
    retriever_artifact = cached_artifact(name, retriever_name, versions[retriever_name])
except ArtifactError as error:
    st.warning(f"{retriever_name} cannot be loaded: {error}")
    st.stop()
retriever = retriever_artifact.model
params = index_controls(retriever_name, retriever, index_box, params_box)
if st.session_state.get("pipe_n") not in CANDIDATES:
    st.session_state["pipe_n"] = DEFAULT_CANDIDATES
n_candidates = params_box.select_slider("Candidates (N)", CANDIDATES, key="pipe_n")

funnels = stored_funnels(name, versions, ranker_names, retriever_name)
ranker_options = [NO_RANKER, *ranker_names]
best = max(funnels, key=lambda r: funnels[r].ndcg_gain) if funnels else NO_RANKER
if st.session_state.get("pipe_ranker") not in ranker_options:
    st.session_state["pipe_ranker"] = best
ranker_name = stage_two.selectbox(
    "Ranker", ranker_options, key="pipe_ranker",
    help="Rankers trained over this retriever keep their tuned blend with its order; over another they rank alone.",
)  # fmt: skip
try:
    ranker = None if ranker_name == NO_RANKER else cached_artifact(name, ranker_name, versions[ranker_name]).model
except ArtifactError as error:
    st.warning(f"{ranker_name} cannot be loaded: {error}")
    st.stop()

user_ids = dict.fromkeys(dataset.users["user_id"].astype(str))  # in order, for suggestions; quick to look up
first = next(iter(user_ids))
if linked["user"] is not None:
    if linked["user"] in user_ids:
        st.session_state["pipe_user"] = linked["user"]
    else:
        st.warning(f"User {literal(linked['user'])} from the link is not in {name}: showing another user.")
st.session_state.setdefault("pipe_user", first)


def pick_random() -> None:
    st.session_state["pipe_user"] = str(np.random.default_rng().choice(list(user_ids)))


who, lucky, share = st.columns([6, 1.2, 0.8], vertical_alignment="bottom")
user_id = user_box(who, f"User id (of {len(user_ids):,})", "pipe_user", user_ids, first, name,
                   placeholder=f"for example {first}")  # fmt: skip
lucky.button("Random user", icon=":material/casino:", on_click=pick_random, key="pipe_random")
to_link(retriever=retriever_name, ranker=NO_RANKER_LINK if ranker is None else ranker_name, candidates=n_candidates,
        user=user_id)  # fmt: skip
with share:
    copy_link("share_pipeline")

try:
    index = None
    if params is not None:
        with st.spinner(f"Building the {params.kind.upper()} index of {retriever_name} (once per model)…"):
            index = load_or_build_index(retriever_artifact, params)
    trace = trace_request(retriever, ranker, dataset, split, user_id, n_candidates, index, K)
except Exception as error:  # a model that fails here is explained, never a traceback
    st.error(f"The pipeline could not answer: {type(error).__name__}: {error}")
    st.stop()

st.subheader("Latency, measured now")
latency_metrics(trace, ranker is not None, n_candidates)

st.subheader("The funnel")
st.plotly_chart(funnel_chart(trace, retriever.n_items, K), width="stretch")
if trace.held_out:
    st.text(f"Held-out test item: {dataset.titles([trace.held_out])[0]}")
    st.caption(f"The user's last interaction, never shown to the models for this request. Protocol: {PROTOCOL}.")
else:
    st.caption("This user has no held-out item: the lists below are plain recommendations.")

st.subheader("Final list next to the retriever's own")
both_lists(dataset, trace, retriever_name, K)
if ranker is not None and ranker_name in funnels:
    funnel_metrics(funnels[ranker_name], retriever_name, ranker_name)
