#!/usr/bin/env python3
"""Real clients nobody here wrote, against a running `quantum sim binance`.

A regression check run by hand (CI must not depend on PyPI). It drives three clients:
ccxt (`binanceusdm`), Binance's futures connector (`binance-futures-connector`, UMFutures)
and Binance's modular SDK (`binance-sdk-derivatives-trading-usds-futures`, with an Ed25519
key and the user data stream on the private route), each through exchangeInfo, the position
mode, positionRisk v3, a new order and a query of it; the SDK also reads the contractInfo
stream on the `/market` route while the check turns ETHUSDT to PRE_SETTLE and back through
`POST /sim/symbol-status`. Every check prints one line; the exit
status is the number of failed checks.

Run it once against a one-way simulator (orders close the long with `reduceOnly=true`) and
once with `--hedge` against one started with `--hedge-mode` (orders close the LONG side with
`positionSide=LONG`, no `reduceOnly`; ccxt also opens and closes a SHORT side). The start
position `BTCUSDT=0.100` is the LONG side in hedge mode.

    python3 -m venv /tmp/pyclients
    /tmp/pyclients/bin/pip install ccxt binance-futures-connector \
        binance-sdk-derivatives-trading-usds-futures
    openssl genpkey -algorithm ed25519 -out /tmp/ed.pem
    openssl pkey -in /tmp/ed.pem -pubout -out /tmp/ed.pub.pem
    ED=EdPYkey00000000000000000000000000000000000000000000000000000000E
    quantum sim binance --listen 127.0.0.1:8089 --position BTCUSDT=0.100 \
        --ed25519-key $ED=/tmp/ed.pub.pem &
    /tmp/pyclients/bin/python tools/binance-sim/clients/check.py \
        --base http://127.0.0.1:8089 --ed25519-key $ED --ed25519-pem /tmp/ed.pem
    # hedge mode: the same with `--hedge-mode` on the simulator and `--hedge` here
    quantum sim binance --listen 127.0.0.1:8090 --position BTCUSDT=0.100 --hedge-mode \
        --ed25519-key $ED=/tmp/ed.pub.pem &
    /tmp/pyclients/bin/python tools/binance-sim/clients/check.py --hedge \
        --base http://127.0.0.1:8090 --ed25519-key $ED --ed25519-pem /tmp/ed.pem
"""

import argparse
import asyncio
import json
import time
import traceback
import urllib.request

TEST_KEY = "qsimTESTkey0000000000000000000000000000000000000000000000000000A"
TEST_SECRET = "qsimTESTsecret00000000000000000000000000000000000000000000000000"

failures = 0


def check(name, fn):
    global failures
    try:
        detail = fn()
        print(f"ok    {name}: {detail}")
    except Exception as e:  # noqa: BLE001 - any failure of a third-party client counts
        failures += 1
        print(f"FAIL  {name}: {type(e).__name__}: {e}")
        traceback.print_exc(limit=3)


def cid(prefix):
    return f"{prefix}-{int(time.time() * 1000) % 10**10}"


def sim_control(base, path, body):
    """POSTs JSON to a simulator control (`/sim/...`, no signature); returns the answer."""
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def closing(hedge):
    """Order parameters that close part of the long: the LONG side in hedge mode (where
    reduceOnly is refused), a reduce-only order in one-way mode."""
    return {"positionSide": "LONG"} if hedge else {"reduceOnly": "true"}


def expect_mode(hedge, dual):
    if bool(dual) != hedge:
        raise AssertionError(f"dualSidePosition {dual}, expected {hedge}")
    return f"dualSidePosition {dual}"


def run_ccxt(base, hedge):
    import ccxt

    ex = ccxt.binanceusdm({"apiKey": TEST_KEY, "secret": TEST_SECRET})
    ex.options["fetchCurrencies"] = False
    for name in list(ex.urls["api"]):
        if name.startswith("fapi"):
            version = {"fapiPublicV2": "v2", "fapiPrivateV2": "v2",
                       "fapiPublicV3": "v3", "fapiPrivateV3": "v3"}.get(name, "v1")
            ex.urls["api"][name] = f"{base}/fapi/{version}"
    check("ccxt load_markets (exchangeInfo)",
          lambda: f"{len(ex.load_markets())} markets, BTC/USDT:USDT amount precision "
                  f"{ex.market('BTC/USDT:USDT')['precision']['amount']}")
    check("ccxt fetch_position_mode (positionSide/dual)",
          lambda: expect_mode(hedge, ex.fetch_position_mode("BTC/USDT:USDT")["hedged"]))
    check("ccxt fetch_positions (positionRisk v3)",
          lambda: [(p["symbol"], p["side"], p["contracts"]) for p in ex.fetch_positions()])
    order_id = {}
    params = {"positionSide": "LONG"} if hedge else {"reduceOnly": True}

    def create():
        o = ex.create_order("BTC/USDT:USDT", "market", "sell", 0.002, None,
                            {**params, "newClientOrderId": cid("ccxt")})
        order_id["id"] = o["id"]
        return f"id {o['id']} status {o['status']} filled {o['filled']} {params}"

    check("ccxt create_order (POST /fapi/v1/order)", create)
    check("ccxt fetch_order (GET /fapi/v1/order)",
          lambda: ex.fetch_order(order_id["id"], "BTC/USDT:USDT")["status"])
    if hedge:
        def short_side():
            opened = ex.create_order("BTC/USDT:USDT", "market", "sell", 0.003, None,
                                     {"positionSide": "SHORT"})
            sides = {p["side"]: p["contracts"] for p in ex.fetch_positions(["BTC/USDT:USDT"])}
            closed = ex.create_order("BTC/USDT:USDT", "market", "buy", 0.003, None,
                                     {"positionSide": "SHORT"})
            if "short" not in sides or "long" not in sides:
                raise AssertionError(f"expected a long and a short side, got {sides}")
            return f"open {opened['status']}, sides {sides}, close {closed['status']}"

        check("ccxt hedge: SHORT side opened beside the LONG, then closed", short_side)


def run_connector(base, hedge):
    from binance.um_futures import UMFutures

    um = UMFutures(key=TEST_KEY, secret=TEST_SECRET, base_url=base)
    check("UMFutures exchange_info", lambda: f"{len(um.exchange_info()['symbols'])} symbols")
    check("UMFutures get_position_mode",
          lambda: expect_mode(hedge, um.get_position_mode()["dualSidePosition"]))
    check("UMFutures get_position_risk (v3)",
          lambda: [(p["symbol"], p["positionSide"], p["positionAmt"])
                   for p in um.get_position_risk()])
    c = cid("umf")
    check("UMFutures new_order",
          lambda: um.new_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.002",
                               newClientOrderId=c, newOrderRespType="RESULT",
                               **closing(hedge))["status"] + f" {closing(hedge)}")
    check("UMFutures query_order",
          lambda: um.query_order(symbol="BTCUSDT", origClientOrderId=c)["status"])


def run_sdk(base, key, pem_path, hedge):
    from binance_common.configuration import (ConfigurationRestAPI,
                                              ConfigurationWebSocketAPI,
                                              ConfigurationWebSocketStreams)
    from binance_common.signature import Signers
    from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import \
        DerivativesTradingUsdsFutures
    from binance_sdk_derivatives_trading_usds_futures.rest_api.models import (
        NewOrderSideEnum)

    with open(pem_path) as f:
        pem = f.read()
    ws_base = base.replace("http://", "ws://")
    client = DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(api_key=key, private_key=pem, base_path=base),
        config_ws_streams=ConfigurationWebSocketStreams(stream_url=ws_base),
        config_ws_api=ConfigurationWebSocketAPI(api_key=key, private_key=pem,
                                                stream_url=f"{ws_base}/ws-fapi/v1"),
    )
    rest = client.rest_api
    check("SDK exchange_information (Ed25519 key)",
          lambda: f"{len(rest.exchange_information().data().symbols)} symbols")
    check("SDK get_current_position_mode",
          lambda: expect_mode(hedge, rest.get_current_position_mode().data().dual_side_position))
    check("SDK position_information_v3 (Ed25519 signature)",
          lambda: [(p.symbol, p.position_side, p.position_amt)
                   for p in rest.position_information_v3().data()])
    side_args = {"position_side": "LONG"} if hedge else {"reduce_only": "true"}
    listen_key = rest.start_user_data_stream().data().listen_key
    events = []

    async def stream_and_order():
        conn = await client.websocket_streams.create_connection()
        stream = await conn.user_data(listenKey=listen_key)
        stream.on("message", lambda data: events.append(data))
        await asyncio.sleep(0.5)
        c = cid("sdk")
        placed = rest.new_order(symbol="BTCUSDT", side=NewOrderSideEnum["SELL"].value,
                                type="MARKET", quantity=0.002, new_client_order_id=c,
                                **side_args).data()
        for _ in range(50):
            if events:
                break
            await asyncio.sleep(0.1)
        await conn.close_connection(close_session=True)
        return placed, c

    placed = {}

    def order():
        o, c = asyncio.run(stream_and_order())
        placed["cid"] = c
        return f"status {o.status} position side {o.position_side} {side_args}"

    check("SDK new_order (Ed25519 signature)", order)
    check("SDK query_order",
          lambda: rest.query_order(symbol="BTCUSDT", orig_client_order_id=placed["cid"]).data().status)
    async def logon_and_order():
        conn = await client.websocket_api.create_connection()
        try:
            r = await conn.send_signed_message({"method": "session.logon", "params": {}},
                                               signer=Signers.get_signer(pem, None),
                                               session_logon=True)
            r = r.data()
            if r.get("status") != 200:
                raise AssertionError(f"session.logon answered {r}")
            o = await conn.new_order(symbol="BTCUSDT", side="SELL", type="MARKET",
                                     quantity=0.002, new_client_order_id=cid("sdkws"),
                                     **side_args)
            return f"logged on as {r['result']['apiKey'][:6]}…, order {o.data().result.status}"
        finally:
            await conn.close_connection(close_session=True)

    check("SDK WebSocket API session.logon + new_order (Ed25519)",
          lambda: asyncio.run(logon_and_order()))
    async def contract_info():
        conn = await client.websocket_streams.create_connection()
        got = []
        try:
            stream = await conn.contract_info_stream()
            stream.on("message", lambda data: got.append(data))
            await asyncio.sleep(0.5)
            # ETHUSDT to PRE_SETTLE and back: two contractInfo events on the /market route.
            for status in ["PRE_SETTLE", "TRADING"]:
                sim_control(base, "/sim/symbol-status", {"symbol": "ETHUSDT", "status": status})
            for _ in range(50):
                if len(got) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close_connection(close_session=True)
        if len(got) < 2:
            raise AssertionError(f"expected 2 contractInfo events, got {got}")
        return ", ".join(f"{g.s} {g.cs}" for g in got)

    check("SDK contract_info_stream (!contractInfo on /market)",
          lambda: asyncio.run(contract_info()))
    check("SDK user_data on the private route",
          lambda: f"{len(events)} events" if events else (_ for _ in ()).throw(
              AssertionError("no user data event arrived")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="http://127.0.0.1:8089")
    ap.add_argument("--ed25519-key")
    ap.add_argument("--ed25519-pem")
    ap.add_argument("--hedge", action="store_true",
                    help="the simulator runs with --hedge-mode: close with positionSide=LONG")
    a = ap.parse_args()
    print(f"mode: {'hedge' if a.hedge else 'one-way'}")
    for name, fn in [("ccxt", lambda: run_ccxt(a.base, a.hedge)),
                     ("binance-futures-connector", lambda: run_connector(a.base, a.hedge))]:
        check(f"{name} imported and ran", lambda fn=fn: fn() or "done")
    if a.ed25519_key and a.ed25519_pem:
        check("modular SDK imported and ran",
              lambda: run_sdk(a.base, a.ed25519_key, a.ed25519_pem, a.hedge) or "done")
    print(f"{failures} failed")
    raise SystemExit(failures)


if __name__ == "__main__":
    main()
