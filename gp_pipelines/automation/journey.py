"""The journey of one order through the automation, read back from what the platform recorded: its plan,
each fulfilment's location and 3PL, the 940 and its 997, the 945s with carrier and tracking, the Cin7 shipment
and the Shopify fulfillment. Used by the demo and handy for support ("where is order SO-123?")."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def order_journey(conn: psycopg.Connection, instance: str, sale_id: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        routed = cur.execute("SELECT order_number, state, reason, plan FROM automation.sales "
                             "WHERE instance = %s AND sale_id = %s", (instance, sale_id)).fetchone() or {}
        fulfilments = cur.execute(
            """SELECT f.seq, f.location, f.partner, f.depositor_order, f.task_id, f.state, f.lines,
                      ef.file_name AS order_file, i.state AS ack_state,
                      coalesce((SELECT jsonb_agg(jsonb_build_object('lines', s.lines, 'carrier', s.carrier,
                                                                    'tracking_number', s.tracking_number,
                                                                    'status', s.state) ORDER BY s.id)
                                  FROM automation.shipments s WHERE s.instance = f.instance
                                   AND s.sale_id = f.sale_id AND s.seq = f.seq), '[]') AS shipments
                 FROM automation.fulfilments f
                 LEFT JOIN automation.edi_files ef ON ef.id = f.edi_file_id
                 LEFT JOIN automation.edi_interchanges i ON i.file_id = f.edi_file_id AND i.direction = 'out'
                WHERE f.instance = %s AND f.sale_id = %s ORDER BY f.seq""", (instance, sale_id)).fetchall()
        actions = cur.execute(
            "SELECT key, kind, state, attempts, result FROM automation.outbox WHERE instance = %s AND subject = %s "
            "ORDER BY id", (instance, sale_id)).fetchall()
    return {"instance": instance, "sale_id": sale_id, "order_number": routed.get("order_number", ""),
            "state": routed.get("state", "not taken on"), "reason": routed.get("reason"),
            "plan": routed.get("plan"), "fulfilments": fulfilments, "actions": actions}


def format_journey(journey: dict[str, Any]) -> str:
    plan = journey.get("plan") or {}
    lines = [f"{journey['instance']} {journey['order_number'] or journey['sale_id']}: {journey['state']}"
             + (f" ({journey['reason']})" if journey.get("reason") else "")]
    if plan:
        lines.append(f"  plan: {len(plan['fulfilments'])} shipment(s), arrives in {plan['delivery_days']:g} day(s), "
                     f"cost {plan['total_cost']:g}" + (f", {len(plan['backorders'])} line(s) backordered"
                                                      if plan["backorders"] else ""))
    for f in journey["fulfilments"]:
        units = ", ".join(f"{line['sku']} ×{line['quantity']}" for line in f["lines"])
        where = f"{f['location']}" + (f" via 3PL {f['partner']}" if f["partner"] else " (in-house)")
        lines.append(f"  {f['depositor_order']}: {where}: {units}")
        lines.append(f"      Cin7 fulfilment {str(f['task_id'])[:8]}…, state {f['state']}")
        if f["order_file"]:
            lines.append(f"      940 {f['order_file']} → 997 {f['ack_state'] or 'not yet'}")
        for shipment in f["shipments"]:
            lines.append(f"      945 shipped {shipment['lines']} by {shipment['carrier']}, tracking "
                         f"{shipment['tracking_number']} → {shipment['status']}")
    for action in journey["actions"]:
        if action["kind"] == "shopify_post_tracking":
            result = action["result"] or {}
            lines.append(f"  Shopify: {action['state']}, fulfillment {result.get('fulfillment_id', '?')} "
                         f"({action['key'].split(':')[2]})")
    return "\n".join(lines)
