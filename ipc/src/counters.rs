//! The counters segment `quantum.<instance>.counters`: labelled `u64` counters and a symbol
//! directory that other processes read without disturbing the writer (after Aeron's counters
//! file and AeronStat).
//!
//! ```text
//! preamble   magic, format version, capacity, layout hash, owner pid, start time (unix ms),
//!            registered count                                       (128 bytes)
//! labels     capacity × 64 bytes: length word + 48 label bytes in 6 atomic words
//! values     capacity × 64 bytes: one AtomicU64 per cache line (writers of different
//!            counters never false-share)
//! symbols    256 × 32 bytes: seqlock word + 24 name bytes in 3 atomic words
//! ```
//!
//! Every byte is read and written as an atomic word, so a reader racing the writer sees old or
//! new values, never undefined behaviour. Labels are written once, before the registered count
//! that publishes them (Release/Acquire). Values are Relaxed: a counter publishes nothing else.
//! Symbol names may change, so each entry is a seqlock.

use parking_lot::Mutex;

use crate::error::Error;
use crate::liveness::{pid_alive, unix_ms};
use crate::segment::{Preamble, COUNTERS_MAGIC};
use crate::shm::{os_id, Segment};
use crate::sync::{fence, AtomicU64, Ordering};
use crate::wire::MAX_SYMBOLS;

/// Longest counter label, in bytes.
pub const MAX_LABEL: usize = 48;
/// Longest name of a directory entry, in bytes: a leg's label
/// ([`crate::codes::PositionSide::label`]), an exchange symbol of up to
/// [`crate::wire::MAX_EXCHANGE_SYMBOL`] bytes and its `:SHORT` suffix.
pub const MAX_SYMBOL_NAME: usize = 24;
/// Name of the counters segment within an instance.
pub const COUNTERS_NAME: &str = "counters";
/// Largest capacity accepted (keeps a corrupt header from asking for a huge mapping size).
const MAX_COUNTERS: usize = 1 << 16;

/// Identifies the segment layout below; changes whenever it does.
const COUNTERS_LAYOUT: u64 = {
    let h = crate::wire::LAYOUT_HASH ^ 0x636f_756e_7465_7273; // "counters"
    h ^ ((MAX_LABEL as u64) << 8) ^ ((MAX_SYMBOL_NAME as u64) << 16) ^ (MAX_SYMBOLS as u64)
};

/// The common preamble (its `aux` word is the capacity; `created_ms` is the writer's start
/// time), then the registered count.
#[repr(C, align(128))]
struct Header {
    common: Preamble,
    /// Counters registered; entries below it have their label written.
    registered: AtomicU64,
}

#[repr(C)]
struct Label {
    len: AtomicU64,
    words: [AtomicU64; MAX_LABEL / 8],
    _pad: AtomicU64,
}

#[repr(C, align(64))]
struct Value(AtomicU64);

#[repr(C)]
struct SymbolEntry {
    /// Even: stable; odd: being written. 0: never set.
    seq: AtomicU64,
    name: [AtomicU64; MAX_SYMBOL_NAME / 8],
}

/// Byte offsets of the arrays for a capacity.
#[derive(Clone, Copy)]
struct Layout {
    labels: usize,
    values: usize,
    symbols: usize,
    size: usize,
}

impl Layout {
    fn new(capacity: usize) -> Layout {
        let labels = std::mem::size_of::<Header>();
        let values = labels + capacity * std::mem::size_of::<Label>();
        let symbols = values + capacity * std::mem::size_of::<Value>();
        let size = symbols + MAX_SYMBOLS as usize * std::mem::size_of::<SymbolEntry>();
        Layout {
            labels,
            values,
            symbols,
            size,
        }
    }
}

/// The mapped segment with typed views.
struct Mapped {
    seg: Segment,
    capacity: usize,
    layout: Layout,
}

impl Mapped {
    fn at<T>(&self, offset: usize) -> &T {
        debug_assert!(offset + std::mem::size_of::<T>() <= self.seg.len());
        // SAFETY: callers pass offsets from `Layout`, which `open` checked against the mapping
        // length; every type here is atomics only (any bit pattern valid) and aligned at its
        // offset (page-aligned base, 64-byte multiples).
        unsafe { &*(self.seg.as_ptr().add(offset) as *const T) }
    }
    fn preamble(&self) -> &Header {
        self.at(0)
    }
    fn label(&self, i: usize) -> &Label {
        self.at(self.layout.labels + i * std::mem::size_of::<Label>())
    }
    fn value(&self, i: usize) -> &AtomicU64 {
        &self
            .at::<Value>(self.layout.values + i * std::mem::size_of::<Value>())
            .0
    }
    fn symbol(&self, i: usize) -> &SymbolEntry {
        self.at(self.layout.symbols + i * std::mem::size_of::<SymbolEntry>())
    }
}

fn pack(words: &[AtomicU64], text: &str) {
    let mut bytes = [0u8; 64];
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    for (i, w) in words.iter().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        // Relaxed: published by the caller's Release store.
        w.store(u64::from_le_bytes(b), Ordering::Relaxed);
    }
}

fn unpack(words: &[AtomicU64], len: usize) -> String {
    let mut bytes = Vec::with_capacity(words.len() * 8);
    for w in words {
        // Relaxed: ordered by the caller's Acquire.
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    bytes.truncate(len.min(words.len() * 8));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Counters as `(label, value)`, in registration order.
type Labelled = Vec<(String, u64)>;

/// Index of a registered counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterId(u32);

/// The single writer of an instance's counters (the core daemon). Shareable between threads.
pub struct CountersWriter {
    map: Mapped,
    os_id: String,
    /// Serialises `register` so the registered count publishes labels in order.
    next: Mutex<usize>,
}

impl CountersWriter {
    /// Creates `quantum.<instance>.counters` (mode 0600) with room for `capacity` counters.
    pub fn create(instance: &str, capacity: usize) -> Result<CountersWriter, Error> {
        CountersWriter::create_named(instance, COUNTERS_NAME, capacity)
    }

    /// Creates a counters segment of another name, `quantum.<instance>.<name>`: a process
    /// other than the daemon that publishes values of its own (the lease, [`crate::lease`]).
    pub fn create_named(
        instance: &str,
        name: &str,
        capacity: usize,
    ) -> Result<CountersWriter, Error> {
        let os_id = os_id(instance, name)?;
        if capacity == 0 || capacity > MAX_COUNTERS {
            return Err(Error::InvalidSpec {
                os_id,
                reason: "counter capacity must be 1 to 65536",
            });
        }
        let layout = Layout::new(capacity);
        let seg = Segment::create(&os_id, layout.size)?;
        let map = Mapped {
            seg,
            capacity,
            layout,
        };
        let p = map.preamble();
        p.common.init(capacity as u32, COUNTERS_LAYOUT, unix_ms());
        p.common.publish(COUNTERS_MAGIC);
        Ok(CountersWriter {
            map,
            os_id,
            next: Mutex::new(0),
        })
    }

    /// [`CountersWriter::create_named`] for a process that owns `quantum.<instance>.<name>`
    /// alone: a segment left by a writer that died (or half created) is replaced; one whose
    /// writer lives is refused ([`Error::AlreadyExists`]).
    pub fn take_named(
        instance: &str,
        name: &str,
        capacity: usize,
    ) -> Result<CountersWriter, Error> {
        let id = os_id(instance, name)?;
        if let Ok(old) = CountersReader::open_named(instance, name) {
            if pid_alive(old.owner_pid()) && old.owner_pid() != u64::from(std::process::id()) {
                return Err(Error::AlreadyExists { os_id: id });
            }
            drop(old);
            crate::shm::remove_segment(&id).map_err(|source| Error::Io {
                os_id: id.clone(),
                source,
            })?;
        } else if crate::shm::path_of(&id).exists() {
            // Not a readable counters segment (half created by a writer that died).
            let _ = crate::shm::remove_segment(&id);
        }
        CountersWriter::create_named(instance, name, capacity)
    }

    /// Adds a counter (value 0) and returns its id.
    pub fn register(&self, label: &str) -> Result<CounterId, Error> {
        if label.len() > MAX_LABEL {
            return Err(Error::TooLong {
                text: label.to_owned(),
                max: MAX_LABEL,
            });
        }
        let mut next = self.next.lock();
        let i = *next;
        if i >= self.map.capacity {
            return Err(Error::CountersFull {
                os_id: self.os_id.clone(),
                capacity: self.map.capacity,
            });
        }
        let entry = self.map.label(i);
        pack(&entry.words, label);
        // Relaxed: published with the words by the Release store below.
        entry.len.store(label.len() as u64, Ordering::Relaxed);
        *next = i + 1;
        // SYNC POINT: Release pairs with the Acquire load of `registered` in
        // `CountersReader::counters`: readers see the label of every counter below the count.
        self.map
            .preamble()
            .registered
            .store((i + 1) as u64, Ordering::Release);
        Ok(CounterId(i as u32))
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(&self, id: CounterId, n: u64) {
        // Relaxed: the value is the whole message; nothing else is published through it.
        self.map
            .value(id.0 as usize)
            .fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a counter (gauges: depths, last latency).
    #[inline]
    pub fn set(&self, id: CounterId, value: u64) {
        // Relaxed: as in `add`.
        self.map
            .value(id.0 as usize)
            .store(value, Ordering::Relaxed);
    }

    /// Writes a group of counters that a reader must see together (one interval's
    /// percentiles): `seq`, a counter of its own, is odd while `write` runs and two more after
    /// it. [`CountersReader::counters_consistent`] is the reader's side.
    pub fn write_group(&self, seq: CounterId, write: impl FnOnce()) {
        let word = self.map.value(seq.0 as usize);
        // Relaxed: this process is the only writer of `seq`.
        let s = word.load(Ordering::Relaxed);
        // Relaxed: ordered before the group's stores by the Release fence below.
        word.store(s | 1, Ordering::Relaxed);
        // Release fence: a reader that sees any of the group's new values (Relaxed stores
        // below) and then, after its Acquire fence, re-reads `seq` finds it changed.
        fence(Ordering::Release);
        write();
        // SYNC POINT: Release pairs with the Acquire load of `seq` in
        // `CountersReader::counters_consistent`: a reader that sees the even value sees the
        // whole group written before it.
        word.store((s | 1) + 1, Ordering::Release);
    }

    /// Reads a counter back.
    pub fn get(&self, id: CounterId) -> u64 {
        // Relaxed: as in `add`.
        self.map.value(id.0 as usize).load(Ordering::Relaxed)
    }

    /// Names symbol `id` in the directory (ids `< 256`, names up to [`MAX_SYMBOL_NAME`] bytes:
    /// a leg's label, see [`crate::codes::PositionSide::label`]).
    pub fn set_symbol(&self, id: u16, name: &str) -> Result<(), Error> {
        if name.len() > MAX_SYMBOL_NAME {
            return Err(Error::TooLong {
                text: name.to_owned(),
                max: MAX_SYMBOL_NAME,
            });
        }
        if id >= MAX_SYMBOLS {
            return Err(Error::InvalidSpec {
                os_id: self.os_id.clone(),
                reason: "symbol id must be below 256",
            });
        }
        // One writer per directory: the `next` lock serialises symbol writes too.
        let _guard = self.next.lock();
        let e = self.map.symbol(id as usize);
        // Relaxed: only this writer stores `seq`.
        let s = e.seq.load(Ordering::Relaxed);
        // Relaxed store + Release fence: the odd value is ordered before the name stores, so a
        // reader that sees any new name word also sees `seq` odd or changed (seqlock write).
        e.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        pack(&e.name, name);
        // SYNC POINT: Release pairs with the reader's first Acquire load of `seq` in `symbols`.
        e.seq.store(s + 2, Ordering::Release);
        Ok(())
    }

    /// Segment id.
    pub fn os_id(&self) -> &str {
        &self.os_id
    }
}

/// A read-only view of another process's counters.
pub struct CountersReader {
    map: Mapped,
    os_id: String,
}

impl CountersReader {
    /// Maps `quantum.<instance>.counters`, refusing another layout or a corrupt header.
    pub fn open(instance: &str) -> Result<CountersReader, Error> {
        CountersReader::open_named(instance, COUNTERS_NAME)
    }

    /// Maps the counters segment `quantum.<instance>.<name>` ([`CountersWriter::create_named`]).
    pub fn open_named(instance: &str, name: &str) -> Result<CountersReader, Error> {
        let os_id = os_id(instance, name)?;
        let seg = Segment::open(&os_id)?;
        if seg.len() < std::mem::size_of::<Header>() {
            return Err(Error::NotInitialised { os_id });
        }
        let probe = Mapped {
            seg,
            capacity: 0,
            layout: Layout::new(0),
        };
        let p = probe.preamble();
        let capacity = p.common.check(&os_id, COUNTERS_MAGIC, COUNTERS_LAYOUT)? as usize;
        let layout = Layout::new(capacity);
        if capacity == 0 || capacity > MAX_COUNTERS || probe.seg.len() < layout.size {
            return Err(Error::Corrupt {
                os_id,
                what: "capacity does not fit the segment",
            });
        }
        Ok(CountersReader {
            map: Mapped {
                seg: probe.seg,
                capacity,
                layout,
            },
            os_id,
        })
    }

    /// Every registered counter as `(label, value)`, in registration order.
    pub fn counters(&self) -> Vec<(String, u64)> {
        // SYNC POINT: Acquire pairs with the Release store in `CountersWriter::register`.
        let n = (self.map.preamble().registered.load(Ordering::Acquire) as usize)
            .min(self.map.capacity);
        (0..n)
            .map(|i| {
                let l = self.map.label(i);
                // Relaxed: ordered by the Acquire above; written once.
                let len = l.len.load(Ordering::Relaxed) as usize;
                // Relaxed: a counter value publishes nothing.
                let value = self.map.value(i).load(Ordering::Relaxed);
                (unpack(&l.words, len), value)
            })
            .collect()
    }

    /// [`CountersReader::counters`], taken while no group guarded by the counter `seq` is
    /// half written ([`CountersWriter::write_group`]); after a bounded number of tries (a
    /// writer that publishes without pause must not hang a reader) the last reading. Without
    /// a counter `seq`, the plain reading.
    pub fn counters_consistent(&self, seq: &str) -> Vec<(String, u64)> {
        match self.counters_whole(seq, 1000) {
            Ok(all) | Err(all) => all,
        }
    }

    /// Like [`CountersReader::counters_consistent`], but `None` when no whole reading was
    /// taken in `tries` tries or `seq` is not registered: for values a decision depends on
    /// (the lease), where a torn reading must never be used.
    pub fn counters_strict(&self, seq: &str, tries: usize) -> Option<Vec<(String, u64)>> {
        if !self.counters().iter().any(|(l, _)| l == seq) {
            return None;
        }
        self.counters_whole(seq, tries).ok()
    }

    /// A whole reading of the group under `seq`, or the last (possibly torn) one.
    fn counters_whole(&self, seq: &str, tries: usize) -> Result<Labelled, Labelled> {
        let Some(i) = self.counters().iter().position(|(l, _)| l == seq) else {
            return Ok(self.counters());
        };
        let word = self.map.value(i);
        let mut all = Vec::new();
        for _ in 0..tries {
            // SYNC POINT: Acquire pairs with the final Release store in `write_group`.
            let s1 = word.load(Ordering::Acquire);
            all = self.counters();
            // Acquire fence: the value loads above happen before the re-check of `seq`; pairs
            // with the writer's Release fence after it made `seq` odd.
            fence(Ordering::Acquire);
            // Relaxed: ordered by the fence.
            let s2 = word.load(Ordering::Relaxed);
            if s1 % 2 == 0 && s1 == s2 {
                return Ok(all);
            }
            std::thread::yield_now();
        }
        Err(all)
    }

    /// The value of the counter with this label, if registered.
    pub fn get(&self, label: &str) -> Option<u64> {
        self.counters()
            .into_iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v)
    }

    /// The symbol directory: `(id, name)` for every named id.
    pub fn symbols(&self) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        for id in 0..MAX_SYMBOLS {
            let e = self.map.symbol(id as usize);
            // Bounded retries: a writer renaming in a loop must not hang a reader.
            for _ in 0..100 {
                // SYNC POINT: Acquire pairs with the writer's final Release store of `seq`.
                let s1 = e.seq.load(Ordering::Acquire);
                if s1 == 0 {
                    break;
                }
                let name = unpack(&e.name, MAX_SYMBOL_NAME);
                // Acquire fence: the name loads above happen before the re-check of `seq`.
                fence(Ordering::Acquire);
                // Relaxed: ordered by the fence.
                let s2 = e.seq.load(Ordering::Relaxed);
                if s1 % 2 == 0 && s1 == s2 {
                    out.push((id, name.trim_end_matches('\0').to_owned()));
                    break;
                }
                crate::sync::spin_loop();
            }
        }
        out
    }

    /// The id of a symbol name.
    pub fn symbol_id(&self, name: &str) -> Option<u16> {
        self.symbols()
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id)
    }

    /// Device and inode of the file behind the segment when it was mapped: a reader whose
    /// name now points at another file (the writer was replaced) maps the new one.
    pub(crate) fn identity(&self) -> Option<(u64, u64)> {
        self.map.seg.identity()
    }

    /// The writer's pid.
    pub fn owner_pid(&self) -> u64 {
        // Relaxed: written once before the magic.
        self.map.preamble().common.owner_pid.load(Ordering::Relaxed)
    }

    /// Whether the writer process exists.
    pub fn owner_alive(&self) -> bool {
        pid_alive(self.owner_pid())
    }

    /// When the writer created the segment (ms since the Unix epoch).
    pub fn start_time_ms(&self) -> u64 {
        // Relaxed: written once before the magic.
        self.map
            .preamble()
            .common
            .created_ms
            .load(Ordering::Relaxed)
    }

    /// Segment id.
    pub fn os_id(&self) -> &str {
        &self.os_id
    }
}
