"""The Pipeline view's blocks: the index controls, each stage's latency, the retriever's list next to
the final one, and the funnel stored when the ranker was trained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from recsys_core.data import PROTOCOL, Dataset
from recsys_core.models.base import Recommender
from recsys_core.results import FunnelResult
from recsys_core.serving.pipeline import PipelineTrace
from recsys_core.serving.retriever import IndexParams

EF_SEARCH = [16, 32, 64, 128, 256, 512]


def index_controls(retriever_name: str, retriever: Recommender, index_box, params_box) -> IndexParams | None:
    """The FAISS index to search the retriever's item vectors with, and its search setting (None:
    exact scoring in torch, the only choice for a model that does not score by an inner product)."""
    if retriever.inner_product:
        # ivfpq only where 4-bit codes can be trained (39 vectors per centroid): fewer bits are no demo.
        small = retriever.n_items < IndexParams("ivfpq", pq_bits=4).min_items()
        kind = index_box.selectbox(
            "Index", ["exact", "flat", "ivf", "hnsw"] + ([] if small else ["ivfpq"]), index=3, key="pipe_index",
            help="FAISS over the retriever's item vectors, inner product (what it scores with)",
        )  # fmt: skip
    else:
        kind = "exact"
        index_box.selectbox(
            "Index", ["exact"], key="pipe_index_exact", disabled=True,
            help=f"{retriever_name} does not score by an inner product: no FAISS index applies",
        )  # fmt: skip
    if kind == "ivf":
        nlist = IndexParams("ivf").resolved(retriever.n_items).nlist
        nprobe = params_box.slider("nprobe (lists scanned)", 1, nlist, min(16, nlist), key="pipe_nprobe")
        return IndexParams("ivf", nlist=nlist, nprobe=nprobe)
    if kind == "ivfpq":
        resolved = IndexParams("ivfpq").resolved(retriever.n_items)
        nlist, bits = resolved.nlist, resolved.pq_bits
        if bits < 8:
            needed = IndexParams("ivfpq", pq_bits=8).min_items()
            params_box.caption(f"{retriever.n_items:,} items are too few to train 8-bit PQ codes ({needed:,} "
                               f"needed): {bits}-bit codes.")  # fmt: skip
        nprobe = params_box.slider("nprobe (lists scanned)", 1, nlist, min(16, nlist), key="pipe_nprobe")
        return IndexParams("ivfpq", nlist=nlist, nprobe=nprobe, pq_bits=bits)
    if kind == "hnsw":
        ef_search = params_box.select_slider("efSearch (search beam)", EF_SEARCH, value=128, key="pipe_ef")
        return IndexParams("hnsw", ef_search=ef_search)
    if kind == "flat":
        params_box.caption("Flat: exact inner-product search inside FAISS; no parameters.")
        return IndexParams("flat")
    params_box.caption("Exact: the retriever scores every item in torch.")
    return None


def latency_metrics(trace: PipelineTrace, ranked: bool, n_candidates: int) -> None:
    """Each stage's median latency over the traced runs, and the index's recall against exact search."""
    median = {stage: float(np.median(times)) for stage, times in trace.latency_ms.items()}
    cells = st.columns(4)
    cells[0].metric("Retrieve", f"{median['retrieve']:.1f} ms")
    cells[1].metric("Rank", f"{median['rank']:.1f} ms" if ranked else "—")
    cells[2].metric("Total", f"{median['total']:.1f} ms")
    if trace.ann_recall is not None:
        cells[3].metric(f"ANN recall@{n_candidates} vs exact", f"{trace.ann_recall:.1%}",
                        help="Share of the exact inner-product top N that the index returns for this user")  # fmt: skip
    runs = len(trace.latency_ms["total"])
    notes = [f"Median of {runs} runs of this request (max {max(trace.latency_ms['total']):.1f} ms)",
             f"retrieval: {trace.result.answer.retrieval}"]  # fmt: skip
    if trace.exact_retrieve_ms is not None:
        notes.append(f"exact retrieval alone takes {trace.exact_retrieve_ms:.1f} ms for the same request")
    st.caption("; ".join(notes) + ".")


def both_lists(dataset: Dataset, trace: PipelineTrace, retriever_name: str, k: int) -> None:
    """The retriever's own top ``k`` next to the final list, the held-out item marked in both."""
    result = trace.result
    held_out = str(dataset.item_ids[trace.held_out]) if trace.held_out else None
    position = {item: n + 1 for n, item in enumerate(result.candidates)}

    def table(items: list[str], moved: bool) -> pd.DataFrame:
        frame = pd.DataFrame({"test item": ["✔" if i == held_out else "" for i in items],
                              "title": dataset.titles([dataset.item_index(i) for i in items])})  # fmt: skip
        return frame.assign(**{"retrieval position": [position.get(i) for i in items]}) if moved else frame

    left, right = st.columns(2)
    left.markdown(f"**{retriever_name} alone** (its top {k})")
    left.dataframe(table(result.retriever_items, False), hide_index=True, width="stretch")
    right.markdown(f"**{result.answer.model}** (top {k} after ranking)")
    right.dataframe(table(result.answer.items, True), hide_index=True, width="stretch")
    shared = len(set(result.retriever_items) & set(result.answer.items))
    st.caption(f"{shared} of {k} items are in both lists; 'retrieval position' shows where the ranker found each item.")


def funnel_metrics(funnel: FunnelResult, retriever_name: str, ranker_name: str) -> None:
    """The ranker's funnel over all test users, as measured when it was trained."""
    st.subheader("Over all test users")
    cells = st.columns(3)
    cells[0].metric(f"Candidate {funnel.recall_label}", f"{funnel.candidate_recall:.3f}")
    cells[1].metric(f"{retriever_name} NDCG@10", f"{funnel.retriever.ndcg_at_10.mean:.4f}")
    cells[2].metric(f"{retriever_name}+{ranker_name} NDCG@10", f"{funnel.final.ndcg_at_10.mean:.4f}",
                    delta=f"{funnel.ndcg_gain:+.4f}")  # fmt: skip
    st.caption(f"Stored at training time, exact retrieval of {funnel.n_candidates} candidates. Protocol: {PROTOCOL}.")
