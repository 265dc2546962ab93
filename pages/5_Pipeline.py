"""Pipeline: one user's request through retriever -> (FAISS index) -> N candidates -> ranker -> top
K, measured live: latency per stage, ANN recall against exact search, where the held-out item sits
at each stage, and the final list next to the retriever's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from recsys_core.artifacts import ArtifactError
from recsys_core.data import PROTOCOL
from recsys_core.models import REGISTRY
from recsys_core.pipeline import DEFAULT_CANDIDATES, trace_request
from recsys_core.retrieval import IndexParams, load_or_build_index
from ui import cached_artifact, cached_split, family_of, open_view, require_models

K = 10
CANDIDATES = [20, 50, 100, 200, 500, 1000]
EF_SEARCH = [16, 32, 64, 128, 256, 512]
NO_RANKER = "none (retriever only)"
dataset = open_view("Two-stage pipeline", "🧪", "Pipeline")
name = dataset.name
versions = require_models(name, "run a pipeline with")
split = cached_split(name)
st.caption(
    "A retriever scores the whole catalogue (exactly, or through a FAISS index) and keeps N candidates, "
    "never the user's history; a ranker reorders only those. Everything below is measured now, for one user."
)

retrievers = [m for m in versions if family_of(m) != "rankers"]
rankers = [m for m in versions if family_of(m) == "rankers"]
if not retrievers:
    st.info("No retriever is trained yet (any model that is not a ranker): train sasrec or two_tower first.")
    st.stop()
stage_one, index_box, params_box, stage_two = st.columns(4)
retriever_name = stage_one.selectbox(
    "Retriever", retrievers, index=retrievers.index("sasrec") if "sasrec" in retrievers else 0, key="pipe_retriever"
)
try:
    retriever_artifact = cached_artifact(name, retriever_name, versions[retriever_name])
except ArtifactError as error:
    st.warning(f"{retriever_name} cannot be loaded: {error}")
    st.stop()
retriever = retriever_artifact.model
if REGISTRY[retriever_name].inner_product:
    kind = index_box.selectbox(
        "Index", ["exact", "flat", "ivf", "hnsw"], index=3, key="pipe_index",
        help="FAISS over the retriever's item vectors, inner product (what it scores with)",
    )  # fmt: skip
else:
    kind = "exact"
    index_box.selectbox(
        "Index", ["exact"], key="pipe_index_exact", disabled=True,
        help=f"{retriever_name} does not score by an inner product: no FAISS index applies",
    )  # fmt: skip
params = None
if kind == "ivf":
    nlist = IndexParams("ivf").resolved(retriever.n_items).nlist
    nprobe = params_box.slider("nprobe (lists scanned)", 1, nlist, min(16, nlist), key="pipe_nprobe")
    params = IndexParams("ivf", nlist=nlist, nprobe=nprobe)
elif kind == "hnsw":
    ef_search = params_box.select_slider("efSearch (search beam)", EF_SEARCH, value=128, key="pipe_ef")
    params = IndexParams("hnsw", ef_search=ef_search)
elif kind == "flat":
    params = IndexParams("flat")
    params_box.caption("Flat: exact inner-product search inside FAISS; no parameters.")
else:
    params_box.caption("Exact: the retriever scores every item in torch.")
n_candidates = params_box.select_slider("Candidates (N)", CANDIDATES, value=DEFAULT_CANDIDATES, key="pipe_n")


def stored_gain(ranker_name: str) -> float | None:
    """Test NDCG@10 the ranker's pipeline gained over this retriever at training time (None when
    it was trained over another retriever)."""
    try:
        artifact = cached_artifact(name, ranker_name, versions[ranker_name])
    except ArtifactError:
        return None  # said when it is chosen
    stored = artifact.metrics.get("pipeline")
    if not stored or getattr(artifact.model.config, "candidates_from", None) != retriever_name:
        return None
    return stored["final"]["NDCG@10"] - stored["retriever"]["NDCG@10"]


gains = {r: g for r in rankers if (g := stored_gain(r)) is not None}
ranker_options = [NO_RANKER, *rankers]
best = max(gains, key=gains.get) if gains else NO_RANKER
ranker_name = stage_two.selectbox(
    "Ranker", ranker_options, index=ranker_options.index(best), key="pipe_ranker",
    help="Rankers trained over this retriever keep their tuned blend with its order; over another they rank alone.",
)  # fmt: skip
try:
    ranker = None if ranker_name == NO_RANKER else cached_artifact(name, ranker_name, versions[ranker_name]).model
except ArtifactError as error:
    st.warning(f"{ranker_name} cannot be loaded: {error}")
    st.stop()

user_ids = dataset.users["user_id"].astype(str).tolist()
if st.session_state.get("pipe_user") not in user_ids:
    st.session_state["pipe_user"] = user_ids[0]


def pick_random() -> None:
    st.session_state["pipe_user"] = str(np.random.default_rng().choice(user_ids))


who, lucky = st.columns([3, 1], vertical_alignment="bottom")
user_id = who.selectbox("User (type to search)", user_ids, key="pipe_user")
lucky.button("Random user", icon=":material/casino:", on_click=pick_random, key="pipe_random")

try:
    index = None
    if params is not None:
        with st.spinner(f"Building the {kind.upper()} index of {retriever_name} (once per model)…"):
            index = load_or_build_index(retriever_artifact, params)
    trace = trace_request(retriever, ranker, dataset, split, user_id, n_candidates, index, K)
except Exception as error:  # a model that fails here is explained, never a traceback
    st.error(f"The pipeline could not answer: {type(error).__name__}: {error}")
    st.stop()
result = trace.result

st.subheader("Latency, measured now")
median = {stage: float(np.median(times)) for stage, times in trace.latency_ms.items()}
cells = st.columns(4)
cells[0].metric("Retrieve", f"{median['retrieve']:.1f} ms")
cells[1].metric("Rank", f"{median['rank']:.1f} ms" if ranker else "—")
cells[2].metric("Total", f"{median['total']:.1f} ms")
if trace.ann_recall is not None:
    cells[3].metric(f"ANN recall@{n_candidates} vs exact", f"{trace.ann_recall:.1%}",
                    help="Share of the exact inner-product top N that the index returns for this user")  # fmt: skip
runs = len(trace.latency_ms["total"])
notes = [f"Median of {runs} runs of this request (max {max(trace.latency_ms['total']):.1f} ms)",
         f"retrieval: {result.answer.retrieval}"]  # fmt: skip
if trace.exact_retrieve_ms is not None:
    notes.append(f"exact retrieval alone takes {trace.exact_retrieve_ms:.1f} ms for the same request")
st.caption("; ".join(notes) + ".")

st.subheader("The funnel")
stages = ["Catalogue", f"Candidates (N = {len(result.candidates)})", f"Final top {K}"]
counts = [retriever.n_items, len(result.candidates), len(result.answer.items)]
if trace.held_out:
    held_title = dataset.titles([trace.held_out])[0]
    where = [
        f"rank {trace.catalogue_rank:,}" if trace.catalogue_rank else "—",
        f"position {trace.candidate_rank}" if trace.candidate_rank else "not retrieved",
        f"position {trace.final_rank}" if trace.final_rank and trace.final_rank <= K
        else (f"position {trace.final_rank}, below the top {K}" if trace.final_rank else "—"),
    ]  # fmt: skip
    text = [f"{c:,} items · held-out: {w}" for c, w in zip(counts, where, strict=True)]
else:
    held_title, text = None, [f"{c:,} items" for c in counts]
funnel = go.Figure(go.Funnel(y=stages, x=counts, text=text, textinfo="text"))
funnel.update_layout(height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_type="log")
st.plotly_chart(funnel, width="stretch")
if held_title:
    st.text(f"Held-out test item: {held_title}")
    st.caption(f"The user's last interaction, never shown to the models for this request. Protocol: {PROTOCOL}.")
else:
    st.caption("This user has no held-out item: the lists below are plain recommendations.")

st.subheader("Final list next to the retriever's own")
held_out_id = str(dataset.item_ids[trace.held_out]) if trace.held_out else None
retrieval_position = {item: n + 1 for n, item in enumerate(result.candidates)}


def list_table(items: list[str], moved: bool) -> pd.DataFrame:
    table = pd.DataFrame({
        "test item": ["✔" if i == held_out_id else "" for i in items],
        "title": dataset.titles([dataset.item_index(i) for i in items]),
    })  # fmt: skip
    if moved:
        table["retrieval position"] = [retrieval_position.get(i) for i in items]
    return table


left, right = st.columns(2)
left.markdown(f"**{retriever_name} alone** (its top {K})")
left.dataframe(list_table(result.retriever_items, False), hide_index=True, width="stretch")
right.markdown(f"**{result.answer.model}** (top {K} after ranking)")
right.dataframe(list_table(result.answer.items, True), hide_index=True, width="stretch")
shared = len(set(result.retriever_items) & set(result.answer.items))
st.caption(f"{shared} of {K} items are in both lists; 'retrieval position' shows where the ranker found each item.")

if ranker is not None:
    stored = cached_artifact(name, ranker_name, versions[ranker_name]).metrics.get("pipeline")
    if stored and getattr(ranker.config, "candidates_from", None) == retriever_name:
        recall_key = next((k for k in stored if k.startswith("recall@")), None)
        st.subheader("Over all test users")
        cells = st.columns(3)
        if recall_key:
            cells[0].metric(f"Candidate {recall_key}", f"{stored[recall_key]:.3f}")
        cells[1].metric(f"{retriever_name} NDCG@10", f"{stored['retriever']['NDCG@10']:.4f}")
        cells[2].metric(f"{retriever_name}+{ranker_name} NDCG@10", f"{stored['final']['NDCG@10']:.4f}",
                        delta=f"{stored['final']['NDCG@10'] - stored['retriever']['NDCG@10']:+.4f}")  # fmt: skip
        st.caption(f"Stored at training time, exact retrieval of {stored.get('n_candidates')} candidates. "
                   f"Protocol: {PROTOCOL}.")  # fmt: skip
