"""What the funnels job asks the JVM to do, rendered from the definitions (no Flink needed)."""

from __future__ import annotations

from dataclasses import replace

from jobs.common import decode
from jobs.common.connectors import render_sql
from jobs.funnels import job
from jobs.funnels.logic import Funnel, Step
from jobs.funnels.settings import FunnelsSettings

SHIPPED = FunnelsSettings.from_env({})


def test_the_jvm_filter_keeps_only_step_and_exclusion_names() -> None:
    assert job.relevant_condition(SHIPPED) == (
        "decoded.event_name IN ('add_to_cart', 'checkout_started', 'order_completed', 'product_viewed', "
        "'signup_completed', 'signup_form_submitted', 'signup_started')"
    )


def test_a_strict_funnel_needs_every_event() -> None:
    strict = Funnel("s", (Step("a"), Step("b")), ordering="strict")
    assert job.relevant_condition(replace(SHIPPED, funnels=(*SHIPPED.funnels, strict))) == "TRUE"


def test_only_the_fields_the_definitions_use_are_projected() -> None:
    assert job.relevant_columns(SHIPPED).split(",\n  ") == [
        f"decoded.`{c}` AS `{c}`"
        for c in (*job.BASE_COLUMNS, "properties")  # properties.currency / properties.product_id
    ]
    assert job.attribute_columns(SHIPPED) == (
        ",\n  `country` AS attr_0,\n  `device_type` AS attr_1,\n  properties['currency'] AS attr_2,"
        "\n  properties['product_id'] AS attr_3"
    )
    plain = Funnel("p", (Step("a"), Step("b")), breakdowns=("browser",))
    assert job.relevant_columns(replace(SHIPPED, funnels=(plain,))).split(",\n  ")[-1] == (
        "decoded.`browser` AS `browser`"
    )


def test_python_gets_one_stream_with_events_ledger_rows_and_dead_letters() -> None:
    settings = replace(SHIPPED, transactional_id_prefix="t")
    spec = job.decode_spec(settings)
    assert spec.transactional_id_prefix == "t-dlq"
    assert settings.windows_transactional_id_prefix == "t-windows"
    select = job.dlq_select(spec)
    assert select.startswith("SELECT") and "encode_dead_letter(" in select and "'funnels'" in select
    statements = render_sql(
        job.SQL,
        max_future_skew="INTERVAL '5' MINUTE",
        relevant=job.relevant_condition(settings),
        relevant_columns=job.relevant_columns(settings),
        device_key=decode.DEVICE_KEY,
        decoded_view="`ux_events_decoded`",
        attribute_columns=job.attribute_columns(settings),
        attribute_nulls=job.attribute_nulls(settings),
        dlq_select=select,
        humans_only=" AND NOT is_bot",
        **{k: "'connector' = 'blackhole'" for k in (
            "attempts_options", "windows_options", "window_steps_options",
            "funnel_topic_options")},
    )  # fmt: skip
    routed = next(s for s in statements if s.startswith("CREATE TEMPORARY VIEW routed"))
    assert routed.count("UNION ALL") == 2
    assert [kind in routed for kind in ("'event' AS kind", "'late'", "'dlq'")] == [True, True, True]
    assert "WHERE occurrence = 1 AND NOT is_bot" in routed  # bots enter no funnel (UXSTREAM_EXCLUDE_BOTS)
    # Identity (README "Identity in funnels"): events go to Python keyed by device key, with their user id,
    # and the earliest link of each (anonymous_id, user_id) pair is relevant besides the funnel steps.
    assert f"SELECT 'event' AS kind, {decode.DEVICE_KEY} AS device_key, ts" in routed
    assert "NULLIF(user_id, '') AS user_id\nFROM numbered" in routed
    # The pair's running minimum rides the partition watermark's window (one operator, partition order).
    assert job.PAIR_LEAST == (
        (
            "pair_least_ts",
            "pair_least_ts(CASE WHEN is_erased THEN CAST(NULL AS STRING) ELSE anonymous_id END, user_id, ts)",
        ),
    )
    assert "ts <= pair_least_ts" in job.RELEVANT
    classify = "\n".join(job.pipeline(settings).step("classify").sql)
    assert f"{job.PAIR_LEAST[0][1]} OVER (\n    {decode.PARTITION_WINDOW}\n  ) AS pair_least_ts" in classify
    # in parentheses: RELEVANT has an OR, and the on-time and ledger conditions go on after it
    assert f"WHERE NOT is_erased AND ({job.RELEVANT}) AND NOT is_future" in classify
    assert f"WHERE NOT is_erased AND ({job.RELEVANT}) AND (is_future OR" in classify
