"""AppTest of every view: with trained models, with none, and with one broken model."""

import base64
import copy
import html
import json
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PAGE_MODELS
from streamlit.testing.v1 import AppTest

from recsys_core import models as registry
from recsys_core.data import PROTOCOL
from recsys_core.store.artifacts import best_per_family
from ui import tables, users

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ("app_pages/overview.py", "app_pages/user_explorer.py", "app_pages/session_playground.py",
         "app_pages/embedding_maps.py", "app_pages/pipeline.py", "app_pages/evaluate_and_ab.py")  # fmt: skip


pytestmark = pytest.mark.usefixtures("app_session")


@pytest.fixture
def trained(trained_synthetic_store, monkeypatch):
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(trained_synthetic_store))
    return trained_synthetic_store


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    if page != "app.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def matches(at: AppTest, box: str) -> list[str]:
    """The titles offered under a title search box (ui.titles), as a user reads the buttons."""
    return [html.unescape(b.label).split(" ", 1)[1] for b in at.button if str(b.key).startswith(f"{box}_pick_")]


def pick_title(at: AppTest, box: str, title: str) -> None:
    """Type ``title`` in the search box ``box`` and click its match."""
    at.text_input(key=box).input(title).run()
    offered = [b for b in at.button if str(b.key).startswith(f"{box}_pick_")]
    next(b for b, shown in zip(offered, matches(at, box), strict=True) if shown == title).click().run()


def add_title(at: AppTest, title: str) -> None:
    pick_title(at, "find_title", title)


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


class _Table(HTMLParser):
    """One of ui.tables' HTML tables: cell texts and styles by row, the first row its header."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self.caption, self._cell, self._in_caption = "", None, False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ["", dict(attrs).get("style", "")]
        self._in_caption |= tag == "caption"

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(tuple(self._cell))
            self._cell = None
        self._in_caption &= tag != "caption"

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        elif self._in_caption:
            self.caption += data


def html_table(at: AppTest, css_class: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The texts and the styles of the page's table of that class (rows by their label), and its caption."""
    pattern = rf'<table class="[^"]*\b{css_class}\b.*?</table>'  # an element may hold several tables
    body = next(m.group(0) for h in at.get("html") if (m := re.search(pattern, h.proto.body, re.DOTALL)))
    table = _Table()
    table.feed(body)
    header, *rows = table.rows
    frame = {part: pd.DataFrame([[cell[part] for cell in row[1:]] for row in rows], columns=[c[0] for c in header[1:]],
                                index=[row[0][0] for row in rows]) for part in (0, 1)}  # fmt: skip
    return frame[0], frame[1], table.caption


def test_html_tables_show_data_as_written():
    body = tables.html_table(["a<b"], [("r&1", [tables.Cell("<img src=x onerror=alert(1)>", "", 'say "hi"')])], "t")
    assert "<img" not in body and "&lt;img src=x" in body and 'title="say &quot;hi&quot;"' in body
    assert "a&lt;b" in body and "r&amp;1" in body


def test_a_mistyped_user_id_is_offered_the_ids_sharing_its_longest_start():
    ids = ["u1", "u4", "u42", "u5"]
    assert users.like("u4x", ids) == ["u4", "u42"] and users.like("u42", ids) == ["u42"]
    assert users.like("x", ids) == [] and users.like("u", ids, limit=2) == ["u1", "u4"]


def compared(at: AppTest) -> pd.DataFrame:
    """The explorer's side-by-side table: a column per model, a row per rank, titles as shown."""
    return html_table(at, "side-by-side")[0]


@pytest.mark.parametrize("page", PAGES)
def test_every_view_explains_when_nothing_is_trained(page):
    at = open_page(page)
    assert not at.error
    messages = " ".join(i.value for i in at.info)
    assert "No model is trained" in messages and "home page" in messages


def test_overview_shows_data_leaderboard_curves_and_cards(trained):
    at = open_page("app_pages/overview.py")
    assert [h.value for h in at.header] == ["The data: synthetic", "Leaderboard", "Charts", "Model cards"]
    assert set(at.dataframe[0].value["model"]) == set(PAGE_MODELS)
    assert any(PROTOCOL in c.value for c in at.caption)
    titles = []
    for chart in at.radio(key="chart").options:
        at.radio(key="chart").set_value(chart).run()
        assert not at.exception and not at.info
        titles += [f["layout"]["title"]["text"] for f in figures(at)]
    expected_titles = ("95% confidence", "Validation NDCG", "Training loss", "Long tails", "per genre",
                       "per month", "Ratings")  # fmt: skip
    assert len(titles) == len(expected_titles)
    for expected in expected_titles:
        assert any(expected in t for t in titles), expected
    labels = [m.label for m in at.metric]
    assert labels[-5:] == ["Parameters", "Training time", "Device", "Best epoch", "Test NDCG@10"]
    at.selectbox(key="card_model").select("ease").run()
    assert not at.exception
    assert any("Embarrassingly Shallow" in m.value for m in at.markdown)
    assert any("Tuning grid" in c.value for c in at.caption)  # a closed-form model shows its grid


def test_overview_without_models_still_shows_the_data(monkeypatch):
    at = open_page("app_pages/overview.py")
    assert "No model is trained" in at.info[0].value
    assert at.radio(key="chart").options == ["Long tails", "Genres", "Ratings over time", "Rating distribution"]
    assert "Long tails" in figures(at)[0]["layout"]["title"]["text"]


def test_user_explorer_compares_the_best_of_each_family_side_by_side_with_the_held_out_item(trained):
    at = open_page("app_pages/user_explorer.py")
    # Default: the best model of each family on validation, at most five, one column each.
    chosen = at.multiselect(key="explorer_models").value
    assert chosen == best_per_family("synthetic", 5) and 1 < len(chosen) <= 5
    families = [registry.REGISTRY[m].family for m in chosen]
    assert len(set(families)) == len(families) and "sequential" in families
    table = compared(at)
    assert len(table) == 10 and len(table.columns) == len(chosen)
    assert table.stack().str.startswith("Item ").all()  # titles, not ids
    # the sequential models find the planted next item for most users: some column marks it ✔,
    # shaded green; an item in two or more lists is marked ·N and shaded blue
    found = False
    for user in ("u1", "u2", "u3", "u4", "u5"):
        at.text_input(key="user").input(user).run()
        assert not at.exception
        texts, styles, _ = html_table(at, "side-by-side")
        held = texts.stack().str.contains("✔")
        found |= held.any()
        assert styles.stack()[held].str.contains("33, 195, 84").all()
        shared = texts.stack().str.contains("·") & ~held
        assert styles.stack()[shared].str.contains("28, 131, 225").all()
    assert found
    sentence = next(h.proto.body for h in at.get("html") if "held-out item is in the top 10 of" in h.proto.body)
    assert PROTOCOL in sentence
    assert at.query_params["user"] == "u5" and at.query_params["models"] == ",".join(chosen)
    # Reasons, with scores, in one long table (folded away): every shown model, ten items each.
    reasons = at.dataframe[1].value
    assert len(reasons) == 10 * len(chosen) and (reasons["because you watched"] != "").all()
    # Three models of one's choosing; all models; the overlap map follows the lists shown.
    at.multiselect(key="explorer_models").set_value(["ease", "bpr", "fm"]).run()
    assert not at.exception and list(compared(at).columns) == ["ease", "bpr", "sasrec+fm"]
    for measure, name in (("rbo", "rank-biased overlap"), ("jaccard", "jaccard")):  # both measures, side by side
        overlap, _, caption = html_table(at, measure)
        assert list(overlap.columns) == list(overlap.index) == ["ease", "bpr", "sasrec+fm"]
        assert name in caption.lower() and (overlap.to_numpy().diagonal() == "1.00").all()
    # fm, a ranker, reorders the candidates of the retriever it was trained over, unless told otherwise
    at.selectbox(key="explorer_retriever").set_value("none: rankers score the whole catalogue").run()
    assert not at.exception and list(compared(at).columns) == ["ease", "bpr", "fm"]
    at.selectbox(key="explorer_retriever").set_value("bpr").run()
    assert not at.exception and list(compared(at).columns) == ["ease", "bpr", "bpr+fm"]
    at.toggle(key="explorer_all").set_value(True).run()
    assert not at.exception and len(compared(at).columns) == len(PAGE_MODELS)
    assert at.query_params["models"] == "all"
    # A random user among those with as many interactions as the filter says.
    at.slider(key="activity").set_value((19, 20)).run()
    at.button(key="random_user").click().run()
    assert not at.exception
    user = at.text_input(key="user").value
    history = html_table(at, "history")[2]
    assert re.search(rf"History of user {user} \((19|20) interactions\)", history)
    # A mistyped id: a clear message, the last user stays, ids like it are suggested.
    at.text_input(key="user").input("u4x").run()
    assert not at.exception
    message = " ".join(w.value for w in at.warning)
    assert "No user u4x in synthetic" in message and f"still showing user {user}" in message and "u4" in message
    assert html_table(at, "history")[2].startswith(f"History of user {user} (")


def test_a_shared_explorer_link_reopens_its_user_and_models(trained):
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"dataset": "synthetic", "user": "u42", "models": "gru4rec,ease,pop"})
    at.run()
    at.switch_page("app_pages/user_explorer.py")
    at.query_params.update({"dataset": "synthetic", "user": "u42", "models": "gru4rec,ease,pop"})
    at.run()
    assert not at.exception
    assert at.text_input(key="user").value == "u42"
    assert list(compared(at).columns) == ["gru4rec", "ease", "pop"]
    at.text_input(key="user").input("u7").run()  # the widgets lead once the link is applied
    assert at.text_input(key="user").value == "u7" and at.query_params["user"] == "u7"


def test_a_stale_explorer_link_says_so_and_falls_back_to_defaults(trained):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/user_explorer.py")
    at.query_params.update({"user": "nobody", "models": "lightgcn,ease", "dataset": "ml-99m"})
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "nobody" in warnings and "lightgcn" in warnings and "ml&#45;99m" in warnings
    assert list(compared(at).columns) == ["ease"]
    assert at.sidebar.selectbox(key="dataset").value == "synthetic"


def position_box(at: AppTest):
    """The playground's "Item to move or remove" (a new widget, with its own key, for each session)."""
    return next(box for box in at.selectbox if box.label == "Item to move or remove")


def session_titles(at: AppTest) -> list[str]:
    """The numbered session list, as shown (plain text, never markdown)."""
    listed = [t.value for t in at.text if t.value.startswith("1. ")]
    return [line.split(". ", 1)[1] for line in listed[0].splitlines()] if listed else []


def test_a_title_is_found_by_typing_part_of_it(trained, synthetic):
    """The playground's title search (ui.titles): every word typed, any case, the most popular
    matches first, a few at a time; a title in the session is not offered again."""
    at = open_page("app_pages/session_playground.py")
    at.button(key="clear_session").click().run()
    at.text_input(key="find_title").input("GROUP 0)").run()
    offered = matches(at, "find_title")
    group = synthetic.items.loc[synthetic.items["title"].str.endswith("(group 0)"), "title"]
    counts = synthetic.interactions["item"].value_counts()
    by_title = {title: counts.get(item, 0) for item, title in group.items()}
    assert len(offered) == 8 and set(offered) <= set(by_title)
    assert [by_title[t] for t in offered] == sorted(by_title.values(), reverse=True)[:8]  # most popular first
    assert any(f"The 8 most popular of {len(group)} matching titles" in c.value for c in at.caption)
    next(b for b in at.button if str(b.key).startswith("find_title_pick_")).click().run()
    assert session_titles(at) == offered[:1] and offered[0] not in matches(at, "find_title")
    at.text_input(key="find_title").input(offered[0]).run()  # the whole title: itself first, unless chosen
    assert offered[0] not in matches(at, "find_title")
    at.text_input(key="find_title").input("no such film").run()
    assert not matches(at, "find_title") and any("No title in synthetic holds no such film" in c.value
                                                  for c in at.caption)  # fmt: skip
    assert not at.exception and session_titles(at) == offered[:1]


def test_session_playground_builds_a_session_and_shows_predictions_attention_and_what_if(
    trained, synthetic, synthetic_split
):
    at = open_page("app_pages/session_playground.py")
    # It opens on an example, a user's recent history, with every chosen model's predictions at once.
    example_user = next(u for u, seq in enumerate(synthetic_split.input_sequences("test")) if u and len(seq) >= 15)
    recent = synthetic_split.input_sequences("test")[example_user][-15:]
    assert session_titles(at) == synthetic.titles(recent)
    assert any(f"last 15 items of user {synthetic.user_ids[example_user]}" in c.value for c in at.caption)
    assert len(html_table(at, "next-items")[0]) == 10
    at.button(key="clear_session").click().run()
    assert not at.exception and "session is empty" in at.info[0].value
    for item in (1, 2, 3):
        add_title(at, f"Item {item} (group 0)")
        assert not at.exception
    assert session_titles(at) == ["Item 1 (group 0)", "Item 2 (group 0)", "Item 3 (group 0)"]
    assert not any("example" in c.value for c in at.caption)
    # The models that predict the next item first, then the other history readers.
    readers = ["gru4rec", "sasrec", "bert4rec", "ease", "fm"]
    assert at.multiselect(key="playground_models").value == readers
    predictions = html_table(at, "next-items")[0]
    assert [c.split(" ")[0] for c in predictions.columns] == readers and len(predictions) == 10
    # the planted rule: after items 1, 2, 3 of a group comes item 4
    assert predictions.iloc[0][predictions.columns[readers.index("sasrec")]].startswith("Item 4 (group 0) · ")
    # each Transformer's attention beside its own list: its averaged map a shaded table, a row per position
    lists = [h.proto.body for h in at.get("html") if "next-items" in h.proto.body][1:]
    assert ["sasrec (" in lists[0], "bert4rec (" in lists[1]] == [True, True]
    for model in ("sasrec", "bert4rec"):
        weights, shades, caption = html_table(at, f"attention {model}")
        assert caption.startswith(f"{model}: attention averaged over") and weights.index[0] == "1. Item 1 (group 0)"
        assert shades.stack().str.contains("28, 131, 225").all()
    assert at.query_params["session"] == "i1,i2,i3"  # the items' own ids (Item 1 is i1)
    at.radio(key="attention_view").set_value("Per layer and head").run()
    assert not at.exception
    maps = [f for f in figures(at) if "attention" in f["layout"]["title"]["text"]]
    assert {f["layout"]["title"]["text"].split(":")[0] for f in maps} == {"sasrec", "bert4rec"}
    assert any("layer 1, head 1" in a["text"] for f in maps for a in f["layout"].get("annotations", []))
    what_if = html_table(at, "what-if")[0]
    assert set(what_if.index) == set(readers)
    next(box for box in at.selectbox if box.label == "Drop").select(2).run()
    assert not at.exception and "without item 3 (chosen above)" in next(h.proto.body for h in at.get("html")
                                                                          if "what-if" in h.proto.body)
    position_box(at).select(2).run()
    at.button(key="move_up").click().run()
    assert session_titles(at) == ["Item 1 (group 0)", "Item 3 (group 0)", "Item 2 (group 0)"]
    assert position_box(at).value == 1  # the selection follows the moved item
    position_box(at).select(0).run()
    at.button(key="remove_item").click().run()
    assert not at.exception
    assert session_titles(at) == ["Item 3 (group 0)", "Item 2 (group 0)"]
    at.button(key="use_genre").click().run()
    assert not at.exception and len(session_titles(at)) == 5
    at.button(key="use_user").click().run()
    u1 = synthetic_split.input_sequences("test")[synthetic.user_index("u1")][-15:]
    assert not at.exception and session_titles(at) == synthetic.titles(u1)
    at.text_input(key="start_user").input("nobody").run()
    at.button(key="use_user").click().run()  # an unknown user: a message, and the session stays
    assert not at.exception and session_titles(at) == synthetic.titles(u1)
    assert any("No user nobody in synthetic" in w.value for w in at.warning)
    at.multiselect(key="playground_models").set_value(["ease"]).run()
    assert not at.exception and [c.split(" ")[0] for c in html_table(at, "next-items")[0].columns] == ["ease"]
    assert "Choose a Transformer" in at.info[0].value
    at.button(key="clear_session").click().run()
    assert not at.exception and "session is empty" in at.info[0].value


def test_a_shared_playground_link_reopens_its_session_and_models(trained, synthetic):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/session_playground.py")
    at.query_params.update({"session": "i1,i2,nothing,i3", "models": "sasrec,bert4rec,lightgcn"})
    at.run()
    assert not at.exception
    assert session_titles(at) == synthetic.titles([synthetic.item_index(i) for i in ("i1", "i2", "i3")])
    assert at.multiselect(key="playground_models").value == ["sasrec", "bert4rec"]
    warnings = " ".join(w.value for w in at.warning)
    assert "nothing" in warnings and "lightgcn" in warnings


def values(array) -> list:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64) for numbers."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def map_figures(at: AppTest) -> list[dict]:
    return [f for f in figures(at) if f["layout"]["title"]["text"].split(":")[0] in PAGE_MODELS]


def test_embedding_maps_draw_points_overlays_and_neighbours(trained, synthetic):
    at = open_page("app_pages/embedding_maps.py")
    assert not at.warning
    maps = map_figures(at)
    assert [f["layout"]["title"]["text"] for f in maps] == ["sasrec: 120 items", "ease: 120 items"]
    for figure in maps:
        assert sum(len(values(trace["x"])) for trace in figure["data"]) == 120  # one trace per genre
        assert {trace["name"] for trace in figure["data"]} == set(synthetic.genre_names)
        assert all(str(t).startswith("Item ") for trace in figure["data"] for t in values(trace["text"]))
    assert "pop" not in at.multiselect(key="map_models_items").options  # no vectors, not offered
    at.text_input(key="map_user").input("u1").run()
    pick_title(at, "find_map_item", "Item 1 (group 0)")
    assert not at.exception
    names = [t["name"] for t in map_figures(at)[0]["data"]]
    assert {"history of u1", "sasrec's top 10", "Item 1 (group 0)"} <= set(names)
    neighbours = [d.value for d in at.dataframe]
    assert len(neighbours) == 2 and all(len(n) == 10 for n in neighbours)
    assert (neighbours[1]["title"].str.endswith("(group 0)")).mean() >= 0.7  # the planted group (chance 1/6)
    assert at.query_params["item"] == "i1"
    at.button(key="clear_map_item").click().run()
    assert not at.dataframe and "item" not in at.query_params
    pick_title(at, "find_map_item", "Item 1 (group 0)")
    at.session_state["session"], at.session_state["session_dataset"] = ["i2", "i3", "i4"], "synthetic"
    at.run()
    at.toggle(key="map_session").set_value(True).run()
    path = [t for t in map_figures(at)[0]["data"] if t["name"] == "session path"]
    assert path and path[0]["mode"] == "lines+markers" and len(values(path[0]["x"])) == 3
    at.selectbox(key="map_colour_items").set_value("popularity").run()
    assert not at.exception and "colorbar" in map_figures(at)[0]["data"][0]["marker"]
    at.radio(key="map_kind").set_value("users").run()
    assert not at.exception
    assert "ease" not in at.multiselect(key="map_models_users").options
    users = map_figures(at)
    assert users and sum(len(values(t["x"])) for t in users[0]["data"] if t["name"] != "user u1") == 300
    assert any(c.value.startswith("UMAP fit") for c in at.caption)


def test_the_pipeline_view_measures_each_stage_and_lists_both_orders(trained):
    at = open_page("app_pages/pipeline.py")
    assert at.selectbox(key="pipe_retriever").value == "sasrec"
    assert at.selectbox(key="pipe_ranker").value == "fm"  # trained over sasrec
    labels = [m.label for m in at.metric]
    assert labels[:4] == ["Retrieve", "Rank", "Total", "ANN recall@200 vs exact"]
    assert all(m.value.endswith(" ms") for m in at.metric[:3])
    assert "sasrec NDCG@10" in labels and "sasrec+fm NDCG@10" in labels
    funnel = [f for f in figures(at) if f["data"][0]["type"] == "funnel"]
    assert funnel and values(funnel[0]["data"][0]["x"])[0] == 120
    before, after = (d.value for d in at.dataframe)
    assert len(before) == len(after) == 10 and "retrieval position" in after.columns
    assert any(PROTOCOL in c.value for c in at.caption)
    at.selectbox(key="pipe_index").set_value("ivf").run()
    at.slider(key="pipe_nprobe").set_value(1).run()
    assert not at.exception
    assert any("nprobe=1" in c.value for c in at.caption)
    # Another user by id; a mistyped one keeps the last user's run and says so.
    at.text_input(key="pipe_user").input("u7").run()
    assert not at.exception and at.query_params["user"] == "u7"
    at.text_input(key="pipe_user").input("u7x").run()
    assert not at.exception and at.query_params["user"] == "u7"
    assert any("No user u7x in synthetic: still showing user u7. Did you mean u7" in w.value for w in at.warning)


def test_every_combination_of_pipeline_controls_answers_without_an_error(trained):
    at = open_page("app_pages/pipeline.py")
    for retriever in at.selectbox(key="pipe_retriever").options:
        at.selectbox(key="pipe_retriever").set_value(retriever).run()
        boxes = {box.key: box for box in at.selectbox}
        kinds = boxes["pipe_index"].options if "pipe_index" in boxes else ["exact"]
        for kind in kinds:
            if kind != "exact":
                at.selectbox(key="pipe_index").set_value(kind).run()
            for ranker in at.selectbox(key="pipe_ranker").options:
                at.selectbox(key="pipe_ranker").set_value(ranker).run()
                assert not at.exception and not at.error, (retriever, kind, ranker)
                assert len(at.dataframe) == 2
    at.select_slider(key="pipe_n").set_value(1000).run()
    assert not at.exception and at.dataframe[1].value.shape[0] == 10


INJECTED = "![x](http://127.0.0.1:9/p.png) *Item* <b>1</b> $x$ :red[y]"


def test_titles_are_text_never_markdown_or_html(trained, synthetic, monkeypatch):
    """A title from a user's file, in every place a view shows one: exactly as written, in plain
    text elements, tables or chart labels, never inside markdown (an image there is fetched by
    every viewer's browser)."""
    from recsys_core import data

    poisoned = copy.deepcopy(synthetic)
    poisoned.items.loc[1, "title"] = INJECTED  # titles are not part of the fingerprint: the models still load
    monkeypatch.setitem(data.DATASETS, "synthetic", lambda root: poisoned)

    def in_markdown(at: AppTest) -> list[str]:
        rendered = [*at.markdown, *at.caption, *at.info, *at.warning, *at.error, *at.success, *at.subheader]
        return [m.value for m in rendered if "127.0.0.1" in m.value or "$x$" in m.value]

    at = open_page("app_pages/embedding_maps.py")
    pick_title(at, "find_map_item", INJECTED)
    assert not at.exception and not in_markdown(at)
    assert all("127.0.0.1" not in b.label for b in at.button)  # a button's label is markdown too: escaped
    assert any(t.value == f"Nearest to {INJECTED} by sasrec" for t in at.text)
    labels = [str(t) for f in map_figures(at) for trace in f["data"] for t in values(trace.get("text", []))]
    assert "![x](http://127.0.0.1:9/p.png) *Item* ‹b›1‹/b› $x$ :red[y]" in labels  # no tag for plotly to read

    at = open_page("app_pages/session_playground.py")
    at.button(key="clear_session").click().run()
    add_title(at, INJECTED)
    add_title(at, "Item 2 (group 0)")
    assert not at.exception and not in_markdown(at)
    assert session_titles(at) == [INJECTED, "Item 2 (group 0)"]  # no backslashes either

    at = open_page("app_pages/user_explorer.py")
    at.text_input(key="user").input(synthetic.user_ids[1]).run()
    assert not at.exception and not in_markdown(at)


def test_a_damaged_store_never_breaks_a_view(trained_synthetic_store, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(trained_synthetic_store, store)
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(store))
    manifest = store / "synthetic" / "manifest.json"
    for damage in ('{"dataset": "synthetic", "models": []}', "not json{"):
        manifest.write_text(damage)
        for page in ("app.py", *PAGES):
            at = open_page(page)
            assert not at.error, (damage, page)
            assert not any("No model is trained" in i.value for i in at.info), (damage, page)
        at = open_page("app.py")
        assert any(f"{len(PAGE_MODELS)}** of" in m.value for m in at.markdown)  # every model still counts
        assert not at.button(key="train_zoo") or "missing" in at.button(key="train_zoo").label
    metrics = store / "synthetic" / "ease" / "metrics.json"
    payload = json.loads(metrics.read_text())
    del payload["test"]["NDCG@10 CI"]
    metrics.write_text(json.dumps(payload))
    for page in ("app.py", "app_pages/overview.py", "app_pages/evaluate_and_ab.py", "app_pages/user_explorer.py"):
        at = open_page(page)
        warnings = " ".join(w.value for w in at.warning)
        assert "ease/metrics.json is damaged" in warnings and "--models ease" in warnings, page


def test_a_damaged_upload_says_so_on_every_view(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "uploads" / "shop"
    folder.mkdir(parents=True)
    (folder / "interactions.csv").write_text("user_id,item_id,rating\nu1,i1,five\n")
    monkeypatch.setenv("DEEPREC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DEEPREC_DATASET", "shop")
    for page in ("app.py", *PAGES):
        at = open_page(page)
        assert "The dataset shop cannot be read" in at.error[0].value, page
        assert "line 2, column 'rating'&#58; 'five' is not a number" in at.error[0].value  # shown literally


def test_a_broken_model_shows_a_message_in_its_own_column(trained_synthetic_store, tmp_path, monkeypatch):
    store = tmp_path / "store"
    shutil.copytree(trained_synthetic_store, store)
    (store / "synthetic" / "sasrec" / "weights.safetensors").write_bytes(b"damaged")
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(store))
    for page in PAGES:
        at = open_page(page)
        assert not at.error
    at = open_page("app_pages/user_explorer.py")
    at.multiselect(key="explorer_models").set_value(["sasrec", "ease", "bpr"]).run()
    assert any("sasrec" in w.value and "damaged" in w.value for w in at.warning)
    assert list(compared(at).columns) == ["ease", "bpr"]  # the other chosen models still compare
    at = open_page("app_pages/session_playground.py")
    add_title(at, "Item 5 (group 0)")
    assert not at.exception
    assert any("sasrec" in w.value for w in at.warning)
    assert html_table(at, "attention bert4rec")[2].startswith("bert4rec: attention averaged")  # the other map stays


def test_views_show_a_running_background_training_in_the_sidebar(isolated_store):
    from recsys_core.training.jobs import cancel_job, job_status, start_job

    start_job("synthetic", ["pop", "sasrec"], quick=False, device="cpu")
    try:
        deadline = time.monotonic() + 60
        while job_status("synthetic").current != "sasrec" and time.monotonic() < deadline:
            time.sleep(0.1)
        at = open_page("app_pages/user_explorer.py")  # pop has landed: the view is usable already
        assert any("Background training on synthetic: 1 of 2 models stored" in c.value for c in at.sidebar.caption)
        assert list(compared(at).columns) == ["pop"]  # the history, then pop's list
    finally:
        cancel_job("synthetic")


def test_evaluate_and_ab_shows_metrics_a_paired_test_and_an_ab_simulation(trained):
    at = open_page("app_pages/evaluate_and_ab.py")
    assert [h.value for h in at.header] == ["Metrics", "Per-user distributions", "Beyond accuracy",
                                           "Paired test between two models", "A/B simulator"]  # fmt: skip
    assert set(at.dataframe[0].value["model"]) == set(PAGE_MODELS)
    assert sum(PROTOCOL in c.value for c in at.caption) >= 4  # every block of metrics names the protocol
    titles = [f["layout"]["title"]["text"] for f in figures(at)]
    assert any("Per-user rank" in t for t in titles) and any("Beyond accuracy" in t for t in titles)
    beyond = next(f for f in figures(at) if "Beyond accuracy" in f["layout"]["title"]["text"])
    assert {a["text"] for a in beyond["layout"]["annotations"]} == {
        "coverage@10", "popularity@10", "diversity@10", "novelty@10"}  # fmt: skip
    at.radio(key="dist_metric").set_value("NDCG@10").run()
    assert not at.exception

    at.selectbox(key="pair_a").select("sasrec").run()
    at.selectbox(key="pair_b").select("pop").run()
    at.selectbox(key="pair_metric").select("NDCG@10").run()
    assert not at.exception
    sentence = " ".join(m.value for m in [*at.success, *at.info])
    assert "sasrec's mean NDCG@10 is" in sentence and "than pop's" in sentence
    assert [m.label for m in at.metric][:4] == ["Mean difference (A − B), NDCG@10", "Paired t-test p",
                                                "Wilcoxon signed-rank p", "Bootstrap 95% CI"]  # fmt: skip
    at.selectbox(key="pair_b").select("sasrec").run()
    assert any("Choose two different models" in i.value for i in at.info)

    assert not any("A/B test of" in m.value for m in [*at.success, *at.info, *at.warning])  # only when asked
    at.selectbox(key="ab_control").select("pop")
    at.selectbox(key="ab_treatment").select("sasrec")
    at.number_input(key="ab_users").set_value(4000)
    at.button(key="ab_run").click().run()
    assert not at.exception
    verdict = [s.value for s in at.success if "A/B test of sasrec (treatment) against pop" in s.value]
    assert verdict and "is statistically significant" in verdict[0] and "nan" not in verdict[0].lower()
    labels = [m.label for m in at.metric]
    for label in ("Control: pop", "Treatment: sasrec", "Welch's t-test p", "Mann-Whitney U p",
                  "Power for the observed lift", "Users needed for +5%"):  # fmt: skip
        assert label in labels
    at.radio(key="dist_metric").set_value("rank").run()  # another widget: the result stays
    assert any("A/B test of sasrec" in s.value for s in at.success)

    at.selectbox(key="ab_control").select("sasrec")
    at.button(key="ab_run").click().run()
    assert not at.exception
    verdict = " ".join(m.value for m in [*at.success, *at.info, *at.warning] if "A/A test" in m.value)
    assert "sasrec in both arms" in verdict and "nan" not in verdict.lower()


def test_evaluate_and_ab_with_missing_per_user_metrics_and_with_one_model(
    trained_synthetic_store, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    shutil.copytree(trained_synthetic_store, store)
    monkeypatch.setenv("DEEPREC_ARTIFACTS_DIR", str(store))
    (store / "synthetic" / "bpr" / "per_user_test.parquet").unlink()
    (store / "synthetic" / "ease" / "per_user_test.parquet").write_bytes(b"damaged")
    at = open_page("app_pages/evaluate_and_ab.py")
    assert not at.error
    warnings = " ".join(w.value for w in at.warning)
    assert "no per-user metrics for bpr" in warnings and "ease" in warnings and "is damaged" in warnings
    assert "bpr" not in at.selectbox(key="ab_control").options
    at.button(key="ab_run").click().run()
    assert not at.exception

    for model in PAGE_MODELS[1:]:
        shutil.rmtree(store / "synthetic" / model)
    at = open_page("app_pages/evaluate_and_ab.py")
    assert not at.error
    messages = " ".join(i.value for i in at.info)
    assert "paired test compares two models" in messages and "needs two models" in messages
