//! A plan's table of per-step inputs: the values a step's kernels read that change from one
//! step to the next (batch offsets, RReLU's key, optimiser numbers), one row per step.
//!
//! Recording a step appends its row to the encoder's staged writes (rows recorded into one
//! encoder sit side by side, so N steps in one submit are one host write) and records copies
//! from the row into the uniforms the kernels bind. The values are taken from the host-side
//! state when the step is recorded: the batch cursor's offset, the plan's RNG key, the
//! optimiser's configuration (its learning rate as the schedule set it) and step count.

use std::cell::{Cell, RefCell};

use crate::Result;
use crate::device::{Device, Encoder};
use crate::kernels::step::{StepInput, StepValue, rng_key};

/// A copy from a row into a kernel's uniform.
#[derive(Debug)]
struct Copy {
    from: u64,
    to: wgpu::Buffer,
    at: u64,
    bytes: u64,
}

/// The per-step inputs of a plan (see the module's documentation).
#[derive(Debug)]
pub(super) struct StepTable {
    /// Each distinct value, once per row, at its offset in the row.
    values: Vec<(StepValue, u64)>,
    copies: Vec<Copy>,
    /// Bytes per row (a multiple of 4, as copies require).
    stride: u64,
    /// The buffer and the rows it holds.
    buffer: RefCell<Option<(wgpu::Buffer, usize)>>,
    /// The encoder recorded into last, and the rows of the buffer it uses.
    cursor: Cell<(u64, usize)>,
}

impl StepTable {
    /// The layout of a row for `inputs` (the kernels' per-step inputs, in plan order).
    pub fn new(inputs: Vec<StepInput>) -> Self {
        let mut values: Vec<(StepValue, u64)> = Vec::new();
        let mut stride = 0;
        let mut copies = Vec::with_capacity(inputs.len());
        for input in inputs {
            let from = match values.iter().find(|(v, _)| v.same(&input.value)) {
                Some((_, at)) => *at,
                None => {
                    let at = stride;
                    stride += input.value.size();
                    values.push((input.value.clone(), at));
                    at
                }
            };
            copies.push(Copy {
                from,
                to: input.buffer,
                at: input.offset,
                bytes: input.value.size(),
            });
        }
        Self {
            values,
            copies,
            stride,
            buffer: RefCell::new(None),
            cursor: Cell::new((0, 0)),
        }
    }

    /// Whether the plan has no per-step input.
    pub fn is_empty(&self) -> bool {
        self.copies.is_empty()
    }

    /// Makes room for `rows` steps per submit now, so that recording allocates nothing.
    pub fn reserve(&self, device: &Device, rows: usize) -> Result<()> {
        let held = self.buffer.borrow().as_ref().map_or(0, |(_, rows)| *rows);
        if self.is_empty() || held >= rows {
            return Ok(());
        }
        let bytes = self.stride * rows as u64;
        let buffer = device.table_buffer("per-step inputs", bytes)?;
        *self.buffer.borrow_mut() = Some((buffer, rows));
        // Rows already recorded into an encoder stay in the buffer they were staged for.
        self.cursor.set((0, 0));
        Ok(())
    }

    /// Takes the next step's values (counting an optimiser step for each optimiser), stages
    /// them as the encoder's next row and records the copies into the kernels' uniforms.
    pub fn record(&self, encoder: &mut Encoder, rng: (u32, u32)) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let (last, used) = self.cursor.get();
        let mut row = if last == encoder.id() { used } else { 0 };
        let held = self.buffer.borrow().as_ref().map_or(0, |(_, rows)| *rows);
        if row >= held {
            // The earlier rows of this encoder stay in the old buffer (the encoder holds it).
            self.reserve(encoder.device(), (2 * held).max(row + 1))?;
            row = 0;
        }
        self.cursor.set((encoder.id(), row + 1));
        let mut bytes = Vec::with_capacity(self.stride as usize);
        for (value, _) in &self.values {
            match value {
                StepValue::BatchOffset(source) => {
                    bytes.extend_from_slice(&source.offset().to_le_bytes());
                }
                StepValue::RngKey => bytes.extend_from_slice(&rng_key(rng.0, rng.1)),
                StepValue::Optimizer(shared) => {
                    bytes.extend_from_slice(bytemuck::bytes_of(&shared.next_hyper()));
                }
            }
        }
        let buffer = self.buffer.borrow();
        let (table, _) = buffer.as_ref().expect("reserved above");
        let base = row as u64 * self.stride;
        encoder.stage_write(table, base, &bytes);
        for copy in &self.copies {
            encoder.copy_buffer(table, base + copy.from, &copy.to, copy.at, copy.bytes);
        }
        Ok(())
    }
}
