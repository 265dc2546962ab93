"""User explorer: a user by id or at random; their recent history; the chosen models' top 10 side by
side (a column per model, the held-out test item and the items models share marked), each item's
score and reason on hover and in a pop-over table; how much the models agree. The user and the
models are in the URL, so the view can be shared."""

from __future__ import annotations

import re

import numpy as np
import streamlit as st

from recsys_core.data.stats import user_history
from recsys_core.models import rankers, retrievers
from recsys_core.serving.explain import answer_each, usual_retriever
from recsys_core.serving.pipeline import DEFAULT_CANDIDATES
from recsys_core.serving.recommend import Answer, Request
from ui import (
    agreement_map,
    cached_best_per_family,
    cached_split,
    cached_user_activity,
    compared_lists,
    copy_link,
    from_link,
    held_out_sentence,
    list_from_link,
    list_reasons,
    literal,
    load_trained,
    open_view,
    recent_history,
    require_models,
    side_by_side,
    stored_damage,
    to_link,
    trained_among,
    user_box,
)

K = 10
SHOWN_BY_DEFAULT = 5
ALL = "all"  # ?models=all: every trained model
WHOLE_CATALOGUE = "none: rankers score the whole catalogue"
dataset = open_view("User explorer")
name = dataset.name
versions = require_models(name, "explore")
split = cached_split(name)

activity = cached_user_activity(name)
low, high = int(activity["interactions"].min()), int(activity["interactions"].max())
counts = dict(zip(activity["user_id"], activity["interactions"], strict=True))
linked_user = from_link("user")
if linked_user is not None:
    if linked_user in counts:
        st.session_state["user"] = linked_user
    else:
        st.warning(f"User {literal(linked_user)} from the link is not in {name}: showing another user.")


@st.fragment
def explore() -> None:
    """The user and the comparison: a change here reruns this part alone, not the sidebar and the
    page's frame, which is what keeps a new user's redraw quick (docs/benchmarks.md)."""
    search, filters, lucky = st.columns([2, 2, 1], vertical_alignment="bottom")
    if low < high:
        st.session_state.setdefault("activity", (low, high))  # set here, not as a default: a link may set it too
        bounds = filters.slider("Random user among those with this many interactions", low, high, key="activity")
    else:  # every user has as many interactions: nothing to filter by
        bounds = (low, high)
    candidates = activity.loc[activity["interactions"].between(*bounds), "user_id"].tolist()
    first = str(activity["user_id"].iloc[0])
    st.session_state.setdefault("user", first)

    def pick_random() -> None:
        st.session_state["user"] = str(np.random.default_rng().choice(candidates))

    lucky.button("Random user", icon=":material/casino:", on_click=pick_random, key="random_user",
                 disabled=not candidates, help=f"One of the {len(candidates):,} users with {bounds[0]} to {bounds[1]} "
                 "interactions.")  # fmt: skip
    user_id = user_box(search, f"User id (of {len(counts):,})", "user", counts, first, name,
                       placeholder=f"for example {first}")  # fmt: skip
    user = dataset.user_index(user_id)
    test_item = int(split.test_item[user])

    recent_history(user_history(dataset, split, user), user_id)

    # The models to compare: the best of each family on validation unless the user (or a link) says otherwise.
    trained = list(versions)
    linked_models = list_from_link("models")
    if linked_models is not None:
        if linked_models == [ALL]:
            st.session_state["explorer_all"] = True
        else:
            unknown = [m for m in linked_models if m not in versions]
            if unknown:
                st.warning(f"Not trained on {name}, so left out: {literal(', '.join(unknown))}.")
            known = [m for m in linked_models if m in versions]
            if known:
                st.session_state["explorer_models"] = known
                st.session_state["explorer_all"] = False
    if "explorer_models" not in st.session_state or not set(st.session_state["explorer_models"]) <= set(trained):
        st.session_state["explorer_models"] = cached_best_per_family(name, tuple(versions.items()), SHOWN_BY_DEFAULT)
    chooser, every, share = st.columns([5, 1.2, 1], vertical_alignment="bottom")
    show_all = every.toggle("All models", key="explorer_all", help=f"Every trained model ({len(trained)}).")
    chosen = chooser.multiselect(
        "Models to compare", trained, key="explorer_models", disabled=show_all,
        help="By default the best model of each family by validation NDCG@10, at most five.",
    )  # fmt: skip
    shown = trained if show_all else chosen
    if not shown:
        st.info("Choose at least one model to compare.")
        st.stop()

    artifacts, problems = load_trained(name, shown)
    ranker_names, retriever_names = trained_among(artifacts, rankers()), trained_among(versions, retrievers())
    retriever = None
    if ranker_names and retriever_names:
        usual = usual_retriever([artifacts[m].model for m in ranker_names], retriever_names)
        choices = [WHOLE_CATALOGUE, *retriever_names]
        retriever = st.selectbox(
            f"Rankers reorder the top {DEFAULT_CANDIDATES} candidates of", choices,
            index=choices.index(usual) if usual else 0, key="explorer_retriever",
            help="A ranker is the second stage of a pipeline; it can also score the whole catalogue alone.",
        )  # fmt: skip
    to_link(user=user_id, models=[ALL] if show_all else chosen)
    with share:
        copy_link("share_explorer")

    models = {m: a.model for m, a in artifacts.items()}
    if retriever not in (None, WHOLE_CATALOGUE) and retriever not in models:
        stage_one, stage_one_problems = load_trained(name, [retriever])
        models_over = stage_one[retriever].model if retriever in stage_one else None
        problems |= stage_one_problems
    else:
        models_over = None if retriever in (None, WHOLE_CATALOGUE) else models[retriever]
    answers = answer_each(models, dataset, split, Request(user_id, k=K), models_over)
    listed = {m: answers[m] for m in shown if isinstance(answers.get(m), Answer)}
    for model in shown:
        problem = problems.get(model) or (answers.get(model) if isinstance(answers.get(model), str) else None)
        if problem:
            st.warning(problem)
    for model, problem in stored_damage(name).items():  # a damaged model not shown: still worth knowing
        if model not in shown:
            st.warning(problem)

    if listed:
        known_history = [int(i) for i in split.input_sequences("test")[user]]
        compared = compared_lists(dataset, listed, versions, known_history, test_item)
        found = held_out_sentence(listed, str(dataset.item_ids[test_item]), K) if test_item else ""
        side_by_side(compared, K, found)
        notes = [f"{a.model}: {'; '.join(filter(None, [a.fallback, *a.notes]))}" for a in listed.values()
                 if a.fallback or a.notes]  # fmt: skip
        if notes:
            st.caption(" · ".join(notes))
        why, download = st.columns([1, 3])
        with why:
            list_reasons(compared)
        file_name = re.sub(r"[^\w.-]", "_", f"{name}-user-{user_id}.csv")  # a user id may hold any character
        download.download_button("Download the lists (CSV)", compared.to_csv(index=False), file_name=file_name,
                                 mime="text/csv", icon=":material/download:", key="explorer_csv")  # fmt: skip

    agreement_map({a.model: a.items for a in listed.values()}, user_id, K)


explore()
