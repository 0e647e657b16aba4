//! libFuzzer target: any 64 bytes decode without panicking, and accepted ones are canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quantum_ipc::wire::{Message, Record, RECORD_SIZE};
use quantum_ipc::Limits;

fuzz_target!(|data: &[u8]| {
    if data.len() < RECORD_SIZE + 1 {
        return;
    }
    let mut b: Record = [0; RECORD_SIZE];
    b.copy_from_slice(&data[1..=RECORD_SIZE]);
    let limits = Limits::new(u16::from(data[0]) + 1);
    if let Ok(m) = Message::decode(&b, &limits) {
        assert_eq!(m.encode(), b);
    }
});
