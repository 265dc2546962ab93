"""Blocks the views render: a model card, a model's top K with reasons, how much the models agree,
and the A/B simulator's form with the results of a paired test and an A/B test."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from recsys_core.data import PROTOCOL, Dataset
from recsys_core.protocols.abtest import PROXIES, ABResult, PairedComparison, format_p
from recsys_core.serving.explain import compare_lists, explain_items, overlap_matrix
from recsys_core.serving.recommend import Answer
from ui.cache import ModelRecord, cached_artifact, cached_reason_vectors
from ui.tables import Cell, heading, heat, html_table, note, show_html, side_by_side_tables

# --------------------------------------------------------------------------- Overview


def model_card(model: str, record: ModelRecord, family: str) -> None:
    """What a trained model is, how it was trained, its headline metric and its settings."""
    info = record.info
    st.markdown(f"**{model}** ({family}). **Paper:** {info.get('paper', 'n/a')}")
    cells = st.columns(5)
    cells[0].metric("Parameters", f"{info.get('parameters') or 0:,}")
    cells[1].metric("Training time", f"{info.get('seconds') or 0:.1f} s")
    cells[2].metric("Device", str(info.get("device_name", info.get("device", "?"))))
    cells[3].metric("Best epoch", str(info.get("best_epoch", "–")))
    cells[4].metric("Test NDCG@10", f"{record.results.test.ndcg_at_10.mean:.4f}")
    st.caption(f"Profile: {info.get('profile', '?')}; trained at {info.get('trained_at', '?')}; "
               f"seed {info.get('seed', '?')}. Protocol: {PROTOCOL}.")  # fmt: skip
    for remark in info.get("notes", []):
        st.caption(f"Note: {remark}")
    st.caption("Settings: " + "; ".join(f"{k} = {v}" for k, v in record.settings.items()))
    if record.history and "epoch" not in record.history[0]:
        st.caption("Tuning grid on validation (the best setting is kept):")
        st.dataframe(pd.DataFrame(record.history), hide_index=True)


# --------------------------------------------------------------------------- User explorer


HELD_OUT_STYLE = "background-color: rgba(33, 195, 84, 0.30); font-weight: 600"
SHARED_STYLE = "background-color: rgba(28, 131, 225, 0.12)"


def held_out_sentence(answers: dict[str, Answer | str], held_out: str, k: int) -> str:
    """Which models have the held-out item (external id) in their top ``k``, best rank first."""
    lists = {m: a.items for m, a in answers.items() if isinstance(a, Answer)}
    ranks = {m: items.index(held_out) + 1 for m, items in lists.items() if held_out in items}
    found = ", ".join(f"{m} (rank {r})" for m, r in sorted(ranks.items(), key=lambda x: x[1])) or "no model"
    return f"The held-out item is in the top {k} of: {found}. Protocol: {PROTOCOL}."


RECENT = 5  # interactions shown at a glance; all of them on demand


def recent_history(history: pd.DataFrame, user_id: str) -> None:
    """The user's most recent interactions as a small table, all of them in a pop-over data grid."""
    recent = history.iloc[::-1].head(RECENT)
    rows = [(row["date"].strftime("%Y-%m-%d"),
             [Cell(row["title"], HELD_OUT_STYLE if row["part"].startswith("test") else "", row["genres"]),
              Cell(f"{row['rating']:g}"), Cell(row["part"])]) for _, row in recent.iterrows()]  # fmt: skip
    shown = f"the {len(recent)} most recent" if len(history) > len(recent) else "most recent first"
    held_out = history["title"].iloc[-1] if len(history) and history["part"].iloc[-1].startswith("test") else None
    show_html(
        html_table(["date", "title", "rating", "part"], rows, "history",
                   f"History of user {user_id} ({len(history)} interactions): {shown}"),
        note(f"Held-out test item (green): {held_out}. The models never saw it." if held_out else
             "This user has too few interactions to hold one out: the lists below are plain recommendations."),
    )  # fmt: skip
    if len(history) > len(recent):
        # A pop-over, not an expander: the browser draws its grid only when it is opened.
        with st.popover(f"All {len(history)} interactions", icon=":material/history:", key="full_history"):
            st.dataframe(history.iloc[::-1], hide_index=True, width=900, height=320)


def compared_lists(
    dataset: Dataset, answers: dict[str, Answer], versions: dict[str, str], history: list[int], test_item: int
) -> pd.DataFrame:
    """The models' lists in long form, as the explorer shows and downloads them: one row per model
    (named as it answered: "sasrec+fm" for a ranker over a retriever) and rank, with the item's
    title and score, whether it is the held-out test item, in how many of the lists it is, and a
    reason from the user's ``history`` (internal ids)."""
    frame = compare_lists({model: answer.items for model, answer in answers.items()})
    internal = [dataset.item_index(i) for i in frame["item"]]
    reasons, scores = [], []
    for model, answer in answers.items():
        reasons += _reasons(dataset, model, versions.get(model, ""), history, answer.items)
        scores += answer.scores
    return pd.DataFrame({
        "model": [answers[m].model for m in frame["model"]], "rank": frame["rank"], "item_id": frame["item"],
        "title": dataset.titles(internal), "score": scores, "held out": [i == test_item for i in internal],
        "in lists": frame["shared by"], "because you watched": reasons,
    })  # fmt: skip


def _reasons(dataset: Dataset, model: str, version: str, history: list[int], items: list[str]) -> list[str]:
    """A reason per item; a reason is an extra, so a model that cannot give one gets a dash."""
    try:
        vectors = cached_reason_vectors(dataset.name, model, version)
        trained = cached_artifact(dataset.name, model, version).model
        return explain_items(trained, vectors, dataset, history, items)[0]
    except Exception:  # the lists still show without their reasons
        return ["—"] * len(items)


def side_by_side(compared: pd.DataFrame, k: int, held_out: str = "") -> None:
    """The lists as one table, a column per model and a row per rank: full titles, the held-out item
    marked ✔ and shaded green wherever it appears, an item in two or more lists marked ·N (shaded),
    each item's score and reason on hover; ``held_out`` says which models found it."""
    order = list(dict.fromkeys(compared["model"]))
    cells = {(row["model"], row["rank"]): row for row in compared.to_dict("records")}

    def cell(model: str, rank: int) -> Cell:
        row = cells.get((model, rank))
        if row is None:  # a model that returned fewer items
            return Cell("")
        shared = row["in lists"] > 1
        text = row["title"] + (" ✔" if row["held out"] else "") + (f" ·{row['in lists']}" if shared else "")
        style = HELD_OUT_STYLE if row["held out"] else SHARED_STYLE if shared else ""
        note_ = f"{model}, rank {rank}: score {row['score']:.3f}; because you watched {row['because you watched']}"
        return Cell(text, style, note_)

    ranks = sorted(set(compared["rank"]))
    show_html(
        heading(f"Top {k} side by side"),
        note(held_out) if held_out else "",
        html_table(["rank", *order], [(str(r), [cell(m, r) for m in order]) for r in ranks], "side-by-side"),
        note("✔ (green): the user's held-out test item. ·N (blue): the item is in N of the lists shown. "
             f"Hover over an item for its score and reason. Protocol: {PROTOCOL}."),
    )  # fmt: skip


def list_reasons(compared: pd.DataFrame) -> None:
    """Each item's reason and score, model by model, folded away until asked for."""
    with st.popover("Why these items", icon=":material/help:", key="why_these"):
        st.caption("Each item's score and a reason from the user's history, model by model.")
        score = st.column_config.NumberColumn(format="%.3f")
        st.dataframe(compared[["model", "rank", "title", "score", "because you watched"]], hide_index=True,
                     width=900, column_config={"score": score})  # fmt: skip


OVERLAPS = {"rbo": "Rank-biased overlap", "jaccard": "Jaccard"}


def _overlap_table(lists: dict[str, list[str]], measure: str, k: int) -> str:
    matrix, label = overlap_matrix(lists, measure), OVERLAPS[measure]
    names = list(matrix.columns)

    def shaded(a: str, b: str) -> Cell:
        value = matrix.loc[a, b]
        return Cell(f"{value:.2f}", heat(value), f"{label} of {a} and {b}: {value:.2f}")

    rows = [(a, [shaded(a, b) for b in names]) for a in names]
    return html_table(["", *names], rows, f"agreement {measure}", f"{label} between the top-{k} lists")


def agreement_map(lists: dict[str, list[str]], user_id: str, k: int) -> None:
    """How much the models' top-``k`` lists overlap, by both measures, as two shaded tables (nothing
    for fewer than two lists)."""
    if len(lists) < 2:
        return
    show_html(
        heading("How much do the models agree?"),
        note(f"The top-{k} lists of user {user_id}, model against model."),
        side_by_side_tables(*(_overlap_table(lists, measure, k) for measure in OVERLAPS)),
        note("Rank-biased overlap (p = 0.9): agreement at every depth, weighted towards the top of the lists. "
             "Jaccard: shared items over all items of both lists, order ignored."),
    )  # fmt: skip


# --------------------------------------------------------------------------- Evaluate and A/B


def paired_result(comparison: PairedComparison, metric: str) -> None:
    cells = st.columns([1, 1, 1, 1.5])
    cells[0].metric(f"Mean difference (A − B), {metric}", f"{comparison.mean_difference:+.4f}")
    cells[1].metric("Paired t-test p", format_p(comparison.t_test_p))
    cells[2].metric("Wilcoxon signed-rank p", format_p(comparison.wilcoxon_p))
    cells[3].metric("Bootstrap 95% CI", f"{comparison.ci_low:+.3f} to {comparison.ci_high:+.3f}")
    (st.success if comparison.significant else st.info)(comparison.sentence)
    st.caption(f"Per-user test {metric} of the same {comparison.n_users:,} users. Protocol: {PROTOCOL}.")


PROXY_HELP = "HR@10: 1 when the held-out item is in the top 10, else 0. The others: a continuous score per user."


def ab_form(dataset_name: str, options: list[str], challenger: str) -> None:
    """The A/B simulator's settings; submitted, they are kept as ``st.session_state["ab_settings"]``
    (what :func:`ui.cache.cached_simulation` reads), so other widgets leave the result in place."""
    with st.form("ab_form"):
        left, right = st.columns(2)
        control = left.selectbox("Control (today's model)", options, key="ab_control")
        treatment = right.selectbox(
            "Treatment (the challenger)", options, index=options.index(challenger) if challenger in options else 1,
            key="ab_treatment",
        )  # fmt: skip
        left, middle, right = st.columns(3)
        split = left.slider("Traffic to the treatment (%)", 5, 95, 50, step=5, key="ab_split")
        n_users = middle.number_input("Users in the test", 20, 2_000_000, 2000, step=500, key="ab_users")
        proxy = right.selectbox("Success proxy", list(PROXIES), key="ab_proxy", help=PROXY_HELP)
        left, middle, right, last = st.columns(4)
        alpha = left.select_slider("Significance level α", [0.01, 0.05, 0.1], 0.05, key="ab_alpha")
        power = middle.select_slider("Desired power", [0.7, 0.8, 0.9, 0.95], 0.8, key="ab_power")
        mde = right.number_input("Minimum detectable effect (relative lift, %)", 1, 500, 5, key="ab_mde")
        seed = last.number_input("Random seed", 0, 1_000_000, 0, key="ab_seed")
        if st.form_submit_button("Run the simulation", type="primary", key="ab_run"):
            st.session_state["ab_settings"] = {
                "dataset": dataset_name, "control": control, "treatment": treatment, "split": split,
                "n_users": int(n_users), "proxy": proxy, "alpha": alpha, "power": power, "mde": mde, "seed": int(seed),
            }  # fmt: skip


def ab_result(result: ABResult) -> None:
    """A simulated A/B test: both arms, the lift with its interval, the tests, power, sample size, the verdict."""
    st.subheader(f"{result.treatment} against {result.control} on {result.proxy}")
    show = (lambda v: f"{v:.1%}") if result.binary else (lambda v: f"{v:.4f}")
    cells = st.columns(4)
    cells[0].metric(f"Control: {result.control}", show(result.control_rate), help=f"{result.n_control:,} users")
    cells[1].metric(
        f"Treatment: {result.treatment}",
        show(result.treatment_rate),
        delta=f"{result.absolute_lift * 100:+.1f} pp" if result.binary else f"{result.absolute_lift:+.4f}",
        help=f"{result.n_treatment:,} users",
    )
    if result.relative_lift is None:
        cells[2].metric("Relative lift", "undefined", help="The control's value is 0.")
    else:
        low, high = result.relative_ci
        cells[2].metric("Relative lift", f"{result.relative_lift:+.1%}")
        cells[2].caption(f"95% CI {low:+.1%} to {high:+.1%}")
    cells[3].metric("Users per arm", f"{result.n_control:,} / {result.n_treatment:,}", help="control / treatment")
    cells = st.columns(4)
    cells[0].metric("Welch's t-test p", format_p(result.welch_p))
    cells[1].metric("Mann-Whitney U p", format_p(result.mann_whitney_p))
    cells[2].metric("Power for the observed lift", f"{result.power:.0%}")
    required = result.required
    cells[3].metric(
        f"Users needed for {result.design.mde:+.0%}",
        f"{required.total:,}" if required else "n/a",
        help=f"{required.control:,} control + {required.treatment:,} treatment" if required
        else "No sample size can be planned for this lift (see the verdict).",
    )  # fmt: skip
    {"success": st.success, "warning": st.warning, "info": st.info}[result.tone](result.verdict)
    st.caption(
        f"{result.ci_method}. Power and sample size: two-proportion z-test (pooled null variance) for a 0/1 proxy, "
        f"two-sample z-test for a continuous one, with the chosen traffic split. Per-user test metrics; protocol: "
        f"{PROTOCOL}."
    )
