"""Union fetch of the STAR core: each tile's selected V rows, read once into SU-FA's V store.

Tiles come in order from the lists stage (``union``: the mask of keys any lane selected, and
the tile's key 0) through a queue of three tiles. Once a V slot credit is free (``SLOTS``
credits; the engine returns one with ``v_release``), the tile's keys are turned into row
requests in ascending key order, one per cycle, through a queue of ``tile`` requests; each
request's address is V_BASE + key · V_STRIDE (a :class:`hw.arith.MulPipe`: the requests go
through a pipe of ``mul_latency`` stages and the request register, all advancing together
while the request register is free). ``filled`` pulses when the tile's last row has arrived (the rows
arrive in request order), or, for an empty union, once every row asked before it is in.

Ports
    union       In stream ``hw.lists.union_layout``.
    req         Out stream ``request_layout`` (to the read arbiter): idx = slot·tile + key.
    v_base, v_stride    In: the V tensor's address and row stride.
    arrived, arrived_last   In: a V row arrives (the tile's last).
    filled      Out: the next tile's V rows are all in the store (tiles in order).
    asked       Out: a row request enters the queue (the KV_ROWS counter).
    v_release, clear    In: a V slot is free again; a job starts (credits to ``SLOTS``).
Latency 2 + ``request_latency(cfg)`` cycles from a tile's slot to its first request;
throughput one request per cycle. Backpressure: ``req.ready``; the union queue holds three tiles.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from star.spec.regmap import ADDR_BITS

from .arith import MulPipe, mul_latency
from .front import key_bits
from .lists import onehot, union_layout
from .pipe import StreamFIFO
from .read_arbiter import request_layout
from .tilebuf import SLOTS

__all__ = ["VFetch", "request_latency"]


def request_latency(cfg) -> int:
    """Cycles a V request spends in the address pipe before the request register (the
    multiplier of key·stride)."""
    return mul_latency(key_bits(cfg), 32, registered=True)


class VFetch(wiring.Component):
    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "union": In(stream.Signature(union_layout(cfg))),
            "req": Out(stream.Signature(request_layout(cfg))),
            "v_base": In(ADDR_BITS), "v_stride": In(32),
            "arrived": In(1), "arrived_last": In(1), "filled": Out(1), "asked": Out(1),
            "v_release": In(1), "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        Bc, kb = cfg.tile, key_bits(cfg)
        lb = cfg.formats.log2_tile
        ul = union_layout(cfg)
        m.submodules.vq = vq = StreamFIFO(ul, depth=3)
        wiring.connect(m, wiring.flipped(self.union), vq.i)

        cred, slot, take = Signal(range(SLOTS + 1)), Signal(), Signal()
        with m.If(self.clear):
            m.d.sync += [cred.eq(SLOTS), slot.eq(0)]
        with m.Else():
            m.d.sync += cred.eq(cred - take + self.v_release)

        # the tile being expanded: its keys, lowest first
        w_mask, w_base, w_busy = Signal(Bc), Signal(kb), Signal()
        pending = Signal(kb + 2)                  # V rows requested and not yet arrived
        head = vq.o.payload
        low, rest = Signal(range(Bc)), Signal(Bc)
        for i in reversed(range(Bc)):
            with m.If(w_mask[i]):
                m.d.comb += low.eq(i)
        rl = data.StructLayout({"key": kb, "slot": 1, "last": 1})
        m.submodules.vreq = vreq = StreamFIFO(rl, depth=Bc)
        vreq_in = vreq.i.payload
        m.d.comb += [rest.eq(w_mask & ~onehot(low, Bc)),
                     vreq_in.key.eq(w_base + low), vreq_in.slot.eq(slot),
                     vreq_in.last.eq(rest == 0), self.asked.eq(vreq.i.valid)]
        with m.If(~w_busy & vq.o.valid & (cred != 0)):
            m.d.comb += [vq.o.ready.eq(1), take.eq(1)]
            m.d.sync += [w_mask.eq(head.mask), w_base.eq(head.base), w_busy.eq(1)]
        with m.If(w_busy & (w_mask != 0) & vreq.i.ready):
            m.d.comb += vreq.i.valid.eq(1)
            m.d.sync += w_mask.eq(rest)
            with m.If(rest == 0):
                m.d.sync += [w_busy.eq(0), slot.eq(~slot)]
        with m.If(w_busy & (w_mask == 0) & (pending == 0)):
            # an empty union: the tile is filled once the rows asked before it are in
            m.d.comb += self.filled.eq(1)
            m.d.sync += [w_busy.eq(0), slot.eq(~slot)]
        with m.Else():
            m.d.comb += self.filled.eq(self.arrived_last)
        m.d.sync += pending.eq(pending + vreq.i.valid - self.arrived)

        # requests: key -> key·stride (a pipelined multiplier) -> address -> the arbiter; the
        # whole pipe advances together whenever the request register is free
        out = self.req
        advance = Signal()
        vreq_out = vreq.o.payload
        m.d.comb += [advance.eq(~out.valid | out.ready), vreq.o.ready.eq(advance)]
        # (the key from the queue's output register, the stride a job register)
        m.submodules.mul = mul = MulPipe(unsigned(kb), unsigned(32), registered=True)
        m.d.comb += [mul.en.eq(advance), mul.a.eq(vreq_out.key), mul.b.eq(self.v_stride)]
        tl = data.StructLayout({"valid": 1, "idx": lb + 1, "last": 1})
        tags = [Signal(tl, name=f"req_tag{i}") for i in range(request_latency(cfg))]
        with m.If(advance):
            m.d.sync += [tags[0].valid.eq(vreq.o.valid),
                         tags[0].idx.eq(Cat(vreq_out.key[:lb], vreq_out.slot)),
                         tags[0].last.eq(vreq_out.last)]
            m.d.sync += [tags[i + 1].eq(tags[i]) for i in range(len(tags) - 1)]
            m.d.sync += [out.valid.eq(tags[-1].valid),
                         out.payload.addr.eq(self.v_base + mul.p),
                         out.payload.idx.eq(tags[-1].idx),
                         out.payload.last.eq(tags[-1].last)]
        return m
