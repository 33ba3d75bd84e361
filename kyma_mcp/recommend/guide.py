"""The `kyma://guide` resource: which Kyma model for which job, as Markdown.

Rendered from `tasks.GUIDE` and the catalog `recommend_model` reads: each row's pick is what the
recommender answers for the row's example task, so the guide and the tool cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from kyma_mcp.catalog import ModelInfo, Source
from kyma_mcp.recommend.profile import GUIDE
from kyma_mcp.recommend.ranking import recommend

_HOW_IT_DECIDES = """\
## How `recommend_model` decides

1. **Hard constraints first.** A model that lacks a capability the task needs (`vision` for a
   screenshot, `tools` for an agent, `image_edit` to change a picture, anything in `needs`), or
   whose context window or output cap is smaller than the task (`min_context`, `min_output`, or a
   size the task states: "a 300-page PDF" ≈ 150,000 tokens, "a 40k-token report"), is never picked.
2. **Then fit and price.** The guide's first choice for the job counts most, the alternatives it
   names a little less; models it does not name are judged by the catalog's own numbers (context,
   output cap) and its `best_for` text. `priority` sets the balance: `balanced` (fit first),
   `cheapest` (estimated cost for the task first), `fastest` (Kyma's `fast` pick and flash-class
   models), `best` (fit, then the stronger, pricier model).
3. **Three answers.** The pick, a model that is cheaper for this task, and a stronger one, each
   with the catalog numbers behind it and ready-to-use `chat` or `generate_image` arguments.
"""


def guide_markdown(models: Sequence[ModelInfo], source: Source) -> str:
    """The guide for this catalog: one table row per job, then how the recommender decides."""
    by_id = {m.id: m for m in models}
    lines = [
        "# Which Kyma model for which job",
        "",
        f"From Kyma's own guidance (FAQ, pricing and image guides), checked against the {source} catalog. "
        "The pick is what `recommend_model` answers for the example task.",
        "",
        "| Job | Pick | Also named | Example task | Kyma says |",
        "|---|---|---|---|---|",
    ]
    for row in GUIDE:
        pick = recommend(row.example, models, source=source).pick
        pick_cell = f"**{pick.model}** ({_facts(by_id[pick.model])})" if pick else "nothing in this catalog fits"
        others = [
            model_id if model_id in by_id else f"{model_id} (not served)"
            for model_id in row.models
            if pick is None or model_id != pick.model
        ]
        cells = (row.job, pick_cell, ", ".join(others) or "-", row.example, row.source)
        lines.append("| " + " | ".join(_cell(text) for text in cells) + " |")
    return "\n".join([*lines, "", _HOW_IT_DECIDES])


def _facts(model: ModelInfo) -> str:
    if model.kind == "image":
        return f"${model.image_usd:g} per image" if model.image_usd is not None else "image"
    facts: list[str] = []
    if model.context_window:
        facts.append(f"{model.context_window:,} context")
    if model.max_output_tokens:
        facts.append(f"{model.max_output_tokens:,} output")
    if model.input_usd_per_1m is not None and model.output_usd_per_1m is not None:
        facts.append(f"${model.input_usd_per_1m:g}/${model.output_usd_per_1m:g} per 1M")
    return ", ".join(facts) or "chat"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
