//! One MULTI/EXEC of writes: what a run of the core's events and of plan entries does to the
//! legacy keys and streams, the acknowledgements that go with it, and the bridge's state.
//!
//! Everything a batch accounts for is written in the same transaction as the state that says
//! it was written ([`crate::state`]), so a bridge killed at any point either wrote the batch
//! and its state or neither. The transaction also sets a marker (`flush`, unique per batch):
//! when a write's answer is lost (a timeout, a dropped connection), the bridge reads the marker
//! back before it tries again, so a batch that did land is never written twice.

use quantum_core::event::{GovPermitEvent, P33PermitEvent};
use quantum_core::{PlanId, PlanResult, PositionSide, Price, Qty, Side};
use redis::{Pipeline, Value};

use crate::legacy::{self, DLQ_STREAM, PLAN_STREAM, RESULT_STREAM};
use crate::state::{self, Saved};

/// The body of [`LEDGER_SCRIPT`], shared with [`FENCED_LEDGER_SCRIPT`].
macro_rules! ledger_body {
    () => {
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[4])
local synced = redis.call('HGET', KEYS[2], ARGV[1])
local v = cur and tonumber(cur)
if v and ARGV[5] == '1' and v > 0 then
  v = 0 - v
end
if cur and cur ~= synced and v ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[2], 'updated_at', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"
    };
}

/// Writes a core's ledger of one leg into its field of the position hash unless an operator's
/// value is waiting there for the core: the value in the field is written by the bridge only
/// if it is the one the core had (the bridge's ledger hash says which), or already equals the
/// new one (a positive value of a never-positive leg read as its negative,
/// [`legacy::read_ledger_amount`]). Returns 1 when written. `KEYS`: position hash, the
/// bridge's ledger hash; `ARGV`: the leg's label (its field in the ledger hash), amount,
/// `updated_at`, the leg's field of the position hash ([`legacy::ledger_field`]), `1` when
/// the leg is never positive ([`legacy::never_positive`]) else `0`.
pub const LEDGER_SCRIPT: &str = ledger_body!();

/// [`LEDGER_SCRIPT`] in failover mode: writes nothing and returns [`FENCED`] unless the lease's
/// epoch counter still holds the writer's epoch. `KEYS`: position hash, ledger hash, epoch key
/// ([`crate::lease::epoch_key`]); `ARGV`: those of [`LEDGER_SCRIPT`], then the epoch.
pub const FENCED_LEDGER_SCRIPT: &str = concat!(
    r"
if redis.call('GET', KEYS[3]) ~= ARGV[6] then
  return -1
end",
    ledger_body!()
);

/// What a fenced script returns when another host holds a newer epoch (nothing was written).
pub const FENCED: i64 = -1;

/// Failover: books one fill of ours into the shared ledger by its increase, once per (plan,
/// cumulative quantity), whichever host sees it and whatever its role (a fill is a fact, and
/// booking it twice is impossible, so it needs no fence).
///
/// `KEYS`: the position hash, the plan's booked marker ([`crate::state::booked_key`]), the
/// ledger hash ([`crate::state::ledger_key`]); `ARGV`: the leg's label (its field in the
/// ledger hash), the plan's cumulative filled quantity, the sign a fill of the order's side
/// moves the ledger by (`1` or `-1`, `Side::sign`), `updated_at`, the marker's TTL (s), the
/// leg's field of the position hash ([`legacy::ledger_field`]: `ledger_amount`, or a hedge
/// leg's `ledger_amount_long` / `ledger_amount_short`), `1` when the leg is never positive
/// ([`legacy::never_positive`]) else `0`.
///
/// The marker holds the cumulative quantity booked so far (absent: none). When `cum` is not
/// above it, nothing is written and 0 is returned. Else the leg's field (absent: 0; a
/// positive value of a never-positive leg read as its negative) moves by
/// sign × (cum − booked), the marker becomes `cum` (expiring), `updated_at` is set, and
/// when the field was the bridge's own value (absent, or equal to the ledger hash's
/// value) the ledger hash takes the new value too, so the bridge never takes this write
/// for an operator's; an operator's value still waiting for the core is moved by the fill
/// and stays an operator's (the core is handed it). Returns 1. Returns [`BOOK_UNREADABLE`]
/// (nothing written) when the field is not a decimal or the sum leaves the range of a
/// quantity.
///
/// The arithmetic is exact: a decimal (at most 8 fraction digits, as the core's quantities)
/// is held as whole units and 1e-8 units, each an exact Lua number, and written back as
/// `quantum_core::fixed::write_units` writes it (`Qty`'s `Display`: shortest exact form,
/// `0`, `-1.5`, `0.00000001`).
pub const BOOK_FILL_SCRIPT: &str = r"
local E8 = 100000000
local function parse(t)
  local s, w, f = string.match(t, '^%s*([+-]?)(%d*)%.?(%d*)%s*$')
  if not s or (w == '' and f == '') then
    return nil
  end
  if #f > 8 then
    if not string.match(string.sub(f, 9), '^0*$') then
      return nil
    end
    f = string.sub(f, 1, 8)
  end
  w = string.match(w, '^0*(%d*)$')
  if #w > 12 then
    return nil
  end
  local h = tonumber(w) or 0
  local l = tonumber(f .. string.rep('0', 8 - #f))
  if s == '-' then
    h, l = 0 - h, 0 - l
  end
  return h, l
end
local function norm(h, l)
  if l >= E8 then
    h, l = h + 1, l - E8
  elseif l <= -E8 then
    h, l = h - 1, l + E8
  end
  if h > 0 and l < 0 then
    h, l = h - 1, l + E8
  elseif h < 0 and l > 0 then
    h, l = h + 1, l - E8
  end
  return h, l
end
local function fits(h, l)
  local a, b = math.abs(h), math.abs(l)
  return a < 92233720368 or (a == 92233720368 and b <= 54775807)
end
local function text(h, l)
  local s = string.format('%.0f', math.abs(h))
  if l ~= 0 then
    s = s .. '.' .. (string.gsub(string.format('%08.0f', math.abs(l)), '0+$', ''))
  end
  if h < 0 or l < 0 then
    s = '-' .. s
  end
  return s
end
local ch, cl = parse(ARGV[2])
local sign = tonumber(ARGV[3])
if not ch or (sign ~= 1 and sign ~= -1) then
  return redis.error_reply('BOOK_FILL: bad cumulative quantity or sign')
end
local ph, pl = 0, 0
local prev = redis.call('GET', KEYS[2])
if prev then
  ph, pl = parse(prev)
  if not ph then
    ph, pl = 0, 0
  end
end
local dh, dl = norm(ch - ph, cl - pl)
if dh < 0 or (dh == 0 and dl <= 0) then
  return 0
end
local cur = redis.call('HGET', KEYS[1], ARGV[6])
local synced = redis.call('HGET', KEYS[3], ARGV[1])
local h, l = 0, 0
if cur then
  h, l = parse(cur)
  if not h then
    return -2
  end
  if ARGV[7] == '1' and (h > 0 or l > 0) then
    h, l = 0 - h, 0 - l
  end
end
h, l = norm(h + sign * dh, l + sign * dl)
if not fits(h, l) then
  return -2
end
local amount = text(h, l)
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5])
redis.call('HSET', KEYS[1], ARGV[6], amount, 'updated_at', ARGV[4])
if not cur or cur == synced then
  redis.call('HSET', KEYS[3], ARGV[1], amount)
end
return 1
";

/// What [`BOOK_FILL_SCRIPT`] returns when it cannot book (the leg's ledger field is not a
/// decimal, or the sum is out of range): nothing was written.
pub const BOOK_UNREADABLE: i64 = -2;

/// Writes a plan's result entry unless the plan has one already: the plan's marker key
/// ([`crate::state::answered_key`]) is set (`NX`, expiring) in the same step as the entry is
/// added, so a plan answered again (its entry pushed to a restarted daemon, a HOLD plan the
/// core does not remember, a `duplicate` answer) never gets a second entry, whichever bridge
/// process or daemon gave the answer. Returns 1 when written, 0 when the plan had its entry.
/// `KEYS`: result stream, marker; `ARGV`: marker TTL (s), `MAXLEN ~`, then field, value, ….
pub const RESULT_SCRIPT: &str = r"
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
return 1
";

/// [`RESULT_SCRIPT`] in failover mode, fenced and acknowledging: writes nothing and returns
/// [`FENCED`] unless the lease's epoch counter still holds the writer's epoch; else writes the
/// result entry unless the plan has one (1 written, 0 not) and, either way, acknowledges the
/// plan entries given (a plan entry is acknowledged only in the call that finds or writes its
/// result). `KEYS`: result stream, marker, epoch key ([`crate::lease::epoch_key`]), plan
/// stream; `ARGV`: marker TTL (s), `MAXLEN ~`, epoch, group, n, n entry ids, then field,
/// value, ….
pub const FENCED_RESULT_SCRIPT: &str = r"
if redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return -1
end
local n = tonumber(ARGV[5])
local written = 0
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 6 + n))
  written = 1
end
if n > 0 then
  redis.call('XACK', KEYS[4], ARGV[4], unpack(ARGV, 6, 5 + n))
end
return written
";

/// The fencing of a failover leader's writes: the lease's epoch key and the epoch it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// [`crate::lease::epoch_key`] of the lease.
    pub epoch_key: String,
    /// The epoch this host leads under.
    pub epoch: u64,
}

/// Which script a kept reply of the transaction belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    Result,
    Ledger,
    Booked,
}

/// What the kept replies of a written transaction say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replies {
    /// Result entries not written because their plan had one.
    pub repeated: u64,
    /// Result entries not written because the fence refused them.
    pub fenced_results: u64,
    /// Ledger writes the fence refused.
    pub fenced_ledger: u64,
    /// Fills booked into the shared ledger ([`BOOK_FILL_SCRIPT`] returned 1).
    pub fills_booked: u64,
    /// Fills the shared ledger had booked already (0).
    pub fills_repeated: u64,
    /// Fills not booked because the leg's ledger field is not a decimal ([`BOOK_UNREADABLE`]).
    pub fills_unbooked: u64,
}

impl Replies {
    /// Some write was fenced: another host leads under a newer epoch.
    pub fn fenced(&self) -> bool {
        self.fenced_results + self.fenced_ledger > 0
    }
}

/// What a batch holds, counted for the stats once it is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Result entries.
    pub results: u64,
    /// Of which without the order id.
    pub results_without_order_id: u64,
    /// Permit keys set.
    pub permits: u64,
    /// Position hash updates (exchange side and ledger).
    pub positions: u64,
    /// Entries acknowledged after the core's answer.
    pub acks: u64,
    /// Entries moved to the dead-letter stream.
    pub dead_letters: u64,
    /// Permit pairs deleted after the core consumed them.
    pub consumed: u64,
}

/// Writes waiting for one MULTI/EXEC.
pub struct Batch {
    pipe: Pipeline,
    acks: Vec<String>,
    ops: usize,
    maxlen: usize,
    group: String,
    instance: String,
    answered_ttl_s: u64,
    /// Position hashes written, by (exchange) symbol: each write is one keyspace notification
    /// the bridge will see and must not take for an operator's.
    position_writes: Vec<String>,
    /// Failover: the fence result and ledger writes are made under (none: unfenced).
    fence: Option<Fence>,
    /// The scripts whose replies the transaction keeps, in order.
    kept: Vec<Kept>,
    /// The plan of each result entry, in the order of their [`Kept::Result`] replies.
    result_plans: Vec<PlanId>,
    /// The plans whose permit keys this batch sets.
    permit_plans: Vec<PlanId>,
    /// What it holds.
    pub counts: Counts,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("ops", &self.ops)
            .field("acks", &self.acks.len())
            .field("counts", &self.counts)
            .finish()
    }
}

impl Batch {
    /// An empty batch of `instance`'s bridge; streams are trimmed to about `maxlen`;
    /// acknowledgements go to `group`; a plan's result marker lives `answered_ttl_s`.
    pub fn new(instance: &str, maxlen: usize, group: &str, answered_ttl_s: u64) -> Batch {
        Batch {
            pipe: Pipeline::new(),
            acks: Vec::new(),
            ops: 0,
            maxlen,
            group: group.to_owned(),
            instance: instance.to_owned(),
            answered_ttl_s: answered_ttl_s.max(1),
            position_writes: Vec::new(),
            fence: None,
            kept: Vec::new(),
            result_plans: Vec::new(),
            permit_plans: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Result and ledger writes added from now on are fenced by `fence` (failover mode), or
    /// not (`None`).
    pub fn set_fence(&mut self, fence: Option<Fence>) {
        self.fence = fence;
    }

    /// What the reply of this batch's transaction says about its scripts.
    pub fn replies(&self, reply: &Value) -> Replies {
        let mut r = Replies::default();
        let Value::Array(v) = reply else {
            return r;
        };
        for (kind, x) in self.kept.iter().zip(v) {
            match (kind, x) {
                (Kept::Result, Value::Int(0)) => r.repeated += 1,
                (Kept::Result, Value::Int(FENCED)) => r.fenced_results += 1,
                (Kept::Ledger, Value::Int(FENCED)) => r.fenced_ledger += 1,
                (Kept::Booked, Value::Int(1)) => r.fills_booked += 1,
                (Kept::Booked, Value::Int(0)) => r.fills_repeated += 1,
                (Kept::Booked, Value::Int(BOOK_UNREADABLE)) => r.fills_unbooked += 1,
                _ => {}
            }
        }
        r
    }

    /// The plan of each result entry in this batch, in order, and whether the transaction's
    /// `reply` says its script wrote it (false for a plan that had its entry, a fenced write,
    /// and every one when the reply is unknown: `None`).
    pub fn results_written(&self, reply: Option<&Value>) -> Vec<(PlanId, bool)> {
        let replies: &[Value] = match reply {
            Some(Value::Array(v)) => v,
            _ => &[],
        };
        let mut written = self
            .kept
            .iter()
            .zip(replies.iter().map(Some).chain(std::iter::repeat(None)))
            .filter(|(k, _)| **k == Kept::Result)
            .map(|(_, r)| matches!(r, Some(Value::Int(1))));
        self.result_plans
            .iter()
            .map(|p| (*p, written.next().unwrap_or(false)))
            .collect()
    }

    /// The plans whose permit keys this batch sets (a plan with both permits in it is named
    /// twice).
    pub fn permit_plans(&self) -> &[PlanId] {
        &self.permit_plans
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops == 0 && self.acks.is_empty()
    }

    /// Writes queued (acknowledgements count one each).
    pub fn len(&self) -> usize {
        self.ops + self.acks.len()
    }

    fn xadd(&mut self, stream: &str, fields: &[(&str, &[u8])]) {
        let c = self
            .pipe
            .cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*");
        for (k, v) in fields {
            c.arg(*k).arg(*v);
        }
        c.ignore();
        self.ops += 1;
    }

    /// A plan's result entry, unless the plan has one ([`RESULT_SCRIPT`]); `leg`: the label of
    /// the plan's leg ([`legacy::result_fields`] writes its symbol and side). Its reply (1
    /// written, 0 not) is the one reply of the transaction that is kept.
    pub fn result(&mut self, r: &PlanResult, leg: &str, order_id: Option<u64>) {
        self.result_acking(r, leg, order_id, &[]);
    }

    /// A plan's result entry; with a fence ([`Batch::set_fence`]) through
    /// [`FENCED_RESULT_SCRIPT`], with the field `epoch`, acknowledging the plan entries `acks`
    /// in the same call. Without a fence `acks` must be empty (acknowledged apart,
    /// [`Batch::ack`]).
    pub fn result_acking(
        &mut self,
        r: &PlanResult,
        leg: &str,
        order_id: Option<u64>,
        acks: &[String],
    ) {
        let mut fields = legacy::result_fields(r, leg, order_id);
        let c = self.pipe.cmd("EVAL");
        match &self.fence {
            None => {
                debug_assert!(acks.is_empty(), "unfenced results acknowledge nothing");
                c.arg(RESULT_SCRIPT)
                    .arg(2)
                    .arg(RESULT_STREAM)
                    .arg(state::answered_key(&self.instance, r.plan))
                    .arg(self.answered_ttl_s)
                    .arg(self.maxlen);
            }
            Some(f) => {
                fields.push((legacy::RESULT_EPOCH_FIELD, f.epoch.to_string()));
                c.arg(FENCED_RESULT_SCRIPT)
                    .arg(4)
                    .arg(RESULT_STREAM)
                    .arg(state::answered_key(&self.instance, r.plan))
                    .arg(&f.epoch_key)
                    .arg(PLAN_STREAM)
                    .arg(self.answered_ttl_s)
                    .arg(self.maxlen)
                    .arg(f.epoch)
                    .arg(&self.group)
                    .arg(acks.len())
                    .arg(acks);
                self.counts.acks += acks.len() as u64;
            }
        }
        for (k, v) in &fields {
            c.arg(*k).arg(v.as_str());
        }
        self.kept.push(Kept::Result);
        self.result_plans.push(r.plan);
        self.ops += 1;
        self.counts.results += 1;
        if r.executed() && order_id.is_none() {
            self.counts.results_without_order_id += 1;
        }
    }

    /// A permit key of `plan` with the time it has left at `now_ms`; false (nothing written)
    /// when it has none left.
    fn permit(
        &mut self,
        plan: PlanId,
        key: String,
        json: String,
        issued_at_ms: u64,
        ttl_ms: u32,
        now_ms: u64,
    ) -> bool {
        let ttl = u64::from(ttl_ms);
        let left = if issued_at_ms == 0 {
            ttl
        } else {
            (issued_at_ms + ttl).saturating_sub(now_ms)
        };
        if left == 0 {
            return false;
        }
        self.pipe
            .cmd("SET")
            .arg(key)
            .arg(json)
            .arg("PX")
            .arg(left)
            .ignore();
        self.ops += 1;
        self.counts.permits += 1;
        self.permit_plans.push(plan);
        true
    }

    /// The governor's permit at `quantum:permit:<id>`, expiring with it; `leg`: the label of
    /// the plan's leg (its symbol is written).
    pub fn gov_permit(&mut self, p: &GovPermitEvent, leg: &str, now_ms: u64) -> bool {
        self.permit(
            p.plan,
            legacy::permit_key(p.plan),
            legacy::gov_permit_json(p, leg),
            p.issued_at_ms,
            p.ttl_ms,
            now_ms,
        )
    }

    /// P3.3's permit at `quantum:permit:p33:<id>`, expiring with it; `leg`: the label of the
    /// plan's leg (its symbol is written).
    pub fn p33_permit(&mut self, p: &P33PermitEvent, leg: &str, now_ms: u64) -> bool {
        self.permit(
            p.plan,
            legacy::p33_permit_key(p.plan),
            legacy::p33_permit_json(p, leg),
            p.issued_at_ms,
            p.ttl_ms,
            now_ms,
        )
    }

    /// The exchange side of leg `leg` (its label) in its symbol's `quantum:position:<SYMBOL>`
    /// ([`legacy::exchange_fields`]).
    pub fn exchange(&mut self, leg: &str, amount: Qty, mark: Price, time_ms: u64) {
        let (symbol, side) = PositionSide::split_label(leg);
        let c = self.pipe.cmd("HSET").arg(legacy::position_key(symbol));
        for (k, v) in legacy::exchange_fields(side, amount, mark, time_ms) {
            c.arg(k).arg(v);
        }
        c.ignore();
        self.ops += 1;
        self.counts.positions += 1;
        self.position_writes.push(symbol.to_owned());
    }

    /// The (exchange) symbols whose position hash this batch writes, once per write (a ledger
    /// write the script declines is counted too: see [`crate::ledger`] for why that is safe).
    pub fn position_writes(&self) -> &[String] {
        &self.position_writes
    }

    /// The core's ledger of leg `leg` (its label) into the leg's field of its symbol's
    /// `quantum:position:<SYMBOL>` ([`LEDGER_SCRIPT`]; with a fence, [`FENCED_LEDGER_SCRIPT`],
    /// whose reply is kept). `instance` names the ledger hash ([`state::ledger_key`]).
    pub fn ledger(&mut self, instance: &str, leg: &str, amount: Qty, at_ms: u64) {
        let (symbol, side) = PositionSide::split_label(leg);
        let c = self.pipe.cmd("EVAL");
        match &self.fence {
            None => c.arg(LEDGER_SCRIPT).arg(2),
            Some(_) => c.arg(FENCED_LEDGER_SCRIPT).arg(3),
        };
        c.arg(legacy::position_key(symbol))
            .arg(state::ledger_key(instance));
        if let Some(f) = &self.fence {
            c.arg(&f.epoch_key);
        }
        c.arg(leg)
            .arg(amount.to_string())
            .arg(legacy::iso_ms(at_ms))
            .arg(legacy::ledger_field(side))
            .arg(u8::from(legacy::never_positive(side)));
        match &self.fence {
            None => {
                c.ignore();
            }
            Some(f) => {
                c.arg(f.epoch);
                self.kept.push(Kept::Ledger);
            }
        }
        self.ops += 1;
        self.counts.positions += 1;
        self.position_writes.push(symbol.to_owned());
    }

    /// Failover: books a fill of `plan` on leg `leg` (its label; its order's side `side`,
    /// `cum_qty` filled so far) into the leg's field of the shared ledger by its increase
    /// ([`BOOK_FILL_SCRIPT`], unfenced; its reply is kept).
    pub fn book_fill(&mut self, leg: &str, plan: PlanId, side: Side, cum_qty: Qty, at_ms: u64) {
        let (symbol, position_side) = PositionSide::split_label(leg);
        self.pipe
            .cmd("EVAL")
            .arg(BOOK_FILL_SCRIPT)
            .arg(3)
            .arg(legacy::position_key(symbol))
            .arg(state::booked_key(&self.instance, plan))
            .arg(state::ledger_key(&self.instance))
            .arg(leg)
            .arg(cum_qty.to_string())
            .arg(side.sign())
            .arg(legacy::iso_ms(at_ms))
            .arg(self.answered_ttl_s)
            .arg(legacy::ledger_field(position_side))
            .arg(u8::from(legacy::never_positive(position_side)));
        self.kept.push(Kept::Booked);
        self.ops += 1;
        self.counts.positions += 1;
        self.position_writes.push(symbol.to_owned());
    }

    /// Acknowledges plan entry `id`.
    pub fn ack(&mut self, id: String) {
        self.acks.push(id);
        self.counts.acks += 1;
    }

    /// Moves plan entry `id` to the dead-letter stream (and acknowledges it).
    pub fn dead_letter(&mut self, id: String, fields: &[(String, Vec<u8>)]) {
        let f: Vec<(&str, &[u8])> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        self.xadd(DLQ_STREAM, &f);
        self.acks.push(id);
        self.counts.dead_letters += 1;
    }

    /// Deletes both permits of `plan`: the core consumed them (the legacy consume).
    pub fn consume_permits(&mut self, plan: PlanId) {
        self.pipe
            .cmd("DEL")
            .arg(legacy::permit_key(plan))
            .arg(legacy::p33_permit_key(plan))
            .ignore();
        self.ops += 1;
        self.counts.consumed += 1;
    }

    /// The transaction: the writes, the acknowledgements, then the state with `marker`.
    pub fn transaction(&self, instance: &str, saved: &Saved, marker: &str) -> Pipeline {
        let mut p = self.pipe.clone();
        p.atomic();
        if !self.acks.is_empty() {
            p.cmd("XACK")
                .arg(PLAN_STREAM)
                .arg(&self.group)
                .arg(&self.acks)
                .ignore();
        }
        let c = p.cmd("HSET").arg(state::state_key(instance));
        for (k, v) in saved.fields() {
            c.arg(k).arg(v);
        }
        c.arg("flush").arg(marker).ignore();
        p
    }
}

/// Result entries a written transaction's reply says were not written because their plan
/// had one already ([`Batch::result`] keeps only those replies).
pub fn results_already_written(reply: &Value) -> u64 {
    match reply {
        Value::Array(v) => v.iter().filter(|x| matches!(x, Value::Int(0))).count() as u64,
        _ => 0,
    }
}

/// Whether the batch marked `marker` is in Redis (its answer was lost, or a write in it failed
/// after the others were applied).
pub async fn landed(
    c: &mut redis::aio::MultiplexedConnection,
    instance: &str,
    marker: &str,
) -> redis::RedisResult<bool> {
    let v: Value = redis::cmd("HGET")
        .arg(state::state_key(instance))
        .arg("flush")
        .query_async(c)
        .await?;
    Ok(matches!(v, Value::BulkString(b) if b == marker.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantum_core::SymbolId;

    #[test]
    fn permits_are_written_with_the_time_they_have_left() {
        let mut b = Batch::new("i1", 1000, "g", 60);
        let p = GovPermitEvent {
            plan: PlanId(1),
            symbol: SymbolId(0),
            allow: true,
            reason: None,
            issued_at_ms: 10_000,
            ttl_ms: 15_000,
        };
        assert!(b.gov_permit(&p, "BTCUSDT", 12_000));
        assert!(!b.gov_permit(&p, "BTCUSDT", 25_000));
        assert_eq!(b.counts.permits, 1);
        let cmds = String::from_utf8_lossy(&b.pipe.get_packed_pipeline()).into_owned();
        assert!(cmds.contains("quantum:permit:0000000000000001"), "{cmds}");
        assert!(cmds.contains("\r\nPX\r\n$5\r\n13000\r\n"), "{cmds}");
    }

    #[test]
    fn the_transaction_ends_with_acks_and_state() {
        let mut b = Batch::new("i1", 1000, "g", 60);
        assert!(b.is_empty());
        b.ack("1-0".into());
        b.dead_letter("2-0".into(), &[("x".into(), b"y".to_vec())]);
        assert_eq!(b.len(), 3);
        let saved = Saved {
            epoch: "e".into(),
            next_seq: 5,
            low_seq: 5,
        };
        let t = b.transaction("i1", &saved, "m-1");
        let cmds = String::from_utf8_lossy(&t.get_packed_pipeline()).into_owned();
        let order: Vec<usize> = ["MULTI", "XADD", "XACK", "HSET", "EXEC"]
            .iter()
            .map(|c| {
                cmds.find(&format!("\r\n{c}\r\n"))
                    .unwrap_or_else(|| panic!("{c} in {cmds}"))
            })
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{cmds}");
        assert!(cmds.contains("quantum:stream:apply.plan.dlq"));
        assert!(cmds.contains("m-1"));
    }

    #[test]
    fn each_result_is_matched_with_its_own_reply() {
        use quantum_core::{Decision, Outcome};
        let result = |plan| PlanResult {
            plan: PlanId(plan),
            symbol: SymbolId(0),
            decision: Decision::Hold,
            outcome: Outcome::NonExecute,
            wait_ns: 0,
            at_ms: 1,
        };
        let mut b = Batch::new("i1", 1000, "g", 60);
        b.result(&result(1), "BTCUSDT", None);
        b.book_fill("BTCUSDT", PlanId(7), Side::Sell, Qty::ZERO, 1);
        b.ack("1-0".into());
        b.result(&result(2), "BTCUSDT", None);
        // Kept replies only, in order: result 1 written, the fill booked, result 2 not.
        let reply = Value::Array(vec![Value::Int(1), Value::Int(1), Value::Int(0)]);
        assert_eq!(
            b.results_written(Some(&reply)),
            [(PlanId(1), true), (PlanId(2), false)]
        );
        assert_eq!(
            b.results_written(None),
            [(PlanId(1), false), (PlanId(2), false)],
            "a lost reply says nothing was written"
        );
        let p = GovPermitEvent {
            plan: PlanId(3),
            symbol: SymbolId(0),
            allow: true,
            reason: None,
            issued_at_ms: 10_000,
            ttl_ms: 15_000,
        };
        assert!(b.gov_permit(&p, "BTCUSDT", 12_000));
        let expired = GovPermitEvent {
            plan: PlanId(4),
            issued_at_ms: 1_000,
            ..p
        };
        assert!(!b.gov_permit(&expired, "BTCUSDT", 17_000));
        assert_eq!(b.permit_plans(), [PlanId(3)]);
    }
}
