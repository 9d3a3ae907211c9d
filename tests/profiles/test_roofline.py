"""Roofline: FLOP and byte counts equal hand-computed values; times follow the stated formulas."""

import numpy as np
import pytest

import profiles
from profiles.capacity import MemoryConfig, ModelDoesNotFitError, kv_budget
from profiles.hardware import GIB, HARDWARE, MeasuredOnlyError, get_hardware
from profiles.models import get_model
from profiles.ops import BatchShape, iteration_ops, iteration_work
from profiles.roofline import iteration_time_s, op_time_s, roofline_profile, token_axis


def ops_by_name(model, tp, batch):
    return {op.name: op for op in iteration_ops(get_model(model), tp, batch)}


def test_tiny_llama_counts_by_hand():
    # tiny-llama: 2 layers, h=64, 4 heads, 2 KV heads, head_dim 16, I=128, vocab 256, fp32 (4 bytes).
    # One prefill of 8 tokens plus decodes at contexts 10 and 20: N = 8 + 2 = 10 tokens, 3 sequences.
    batch = BatchShape.of([8], [10, 20])
    assert (batch.num_tokens, batch.num_sequences, batch.prefill_pairs) == (10, 3, 8 * 9)
    ops = ops_by_name("tiny-llama", 1, batch)
    # qkv: 10x64 @ 64x(4+2*2)*16=128 -> 2*10*64*128 FLOPs; weights 64*128*4; in 10*64*4, out 10*128*4
    assert (ops["qkv"].flops, ops["qkv"].bytes, ops["qkv"].weight_bytes) == (163_840, 32_768 + 7_680, 32_768)
    assert (ops["o"].flops, ops["o"].bytes) == (2 * 10 * 64 * 64, 64 * 64 * 4 + (640 + 640) * 4)
    # up: gate and up, 64 x 256
    assert (ops["up"].flops, ops["up"].bytes) == (2 * 10 * 64 * 256, 64 * 256 * 4 + (640 + 2560) * 4)
    assert (ops["down"].flops, ops["down"].bytes) == (2 * 10 * 128 * 64, 128 * 64 * 4 + (1280 + 640) * 4)
    # prefill attention: 2 * L(L+1) * head_dim * heads = 2*72*16*4; reads q,k,v + writes o: 8*(8+4)*16*4,
    # writes the prompt's KV: 8*2*2*16*4
    assert (ops["attn_prefill"].flops, ops["attn_prefill"].bytes, ops["attn_prefill"].kv_bytes) == (9_216, 6_144 + 2_048, 2_048)
    # decode attention: 4 * (10+20) * 16 * 4; reads KV 30*2*2*16*4 = 7680, q/o/new kv 2*(8+4)*16*4 = 1536
    assert (ops["attn_decode"].flops, ops["attn_decode"].bytes, ops["attn_decode"].kv_bytes) == (7_680, 9_216, 7_680 + 512)
    # elementwise: norms 2*10*64*4, rope 2*10*(4+2)*16*4, act 3*10*128*4, add 3*10*64*4
    assert [ops[n].bytes for n in ("input_norm", "rope", "post_norm", "act", "add", "embed", "final_norm")] == \
        [5_120, 7_680, 5_120, 15_360, 7_680, 5_120, 5_120]
    # LM head over the 3 sequences' last tokens: 3x64 @ 64x256
    assert (ops["lm_head"].flops, ops["lm_head"].bytes) == (2 * 3 * 64 * 256, 64 * 256 * 4 + (3 * 64 + 3 * 256) * 4)
    assert "all_reduce" not in ops
    work = iteration_work(iteration_ops(get_model("tiny-llama"), 1, batch))
    per_layer_flops = 163_840 + 81_920 + 327_680 + 163_840 + 9_216 + 7_680  # 754,176
    assert work.flops == 2 * per_layer_flops + 98_304
    per_layer_bytes = 40_448 + 21_504 + 78_336 + 40_448 + 8_192 + 9_216 + 40_960  # 239,104
    assert work.bytes == 2 * per_layer_bytes + 69_376 + 5_120 + 5_120  # 557,824
    assert work.weight_bytes == 2 * (32_768 + 16_384 + 65_536 + 32_768) + 65_536  # read once per iteration
    assert work.kv_bytes == 2 * (2_048 + 8_192)
    assert work.all_reduce_bytes == 0


def test_tiny_opt_tp2_counts_by_hand():
    # tiny-opt at tp=2: per rank 2 heads, 2 KV heads, I/tp = 64, vocab/tp = 128; biases; no rope.
    # Two decodes at contexts 5 and 7: N = 2 tokens.
    ops = ops_by_name("tiny-opt", 2, BatchShape.of([], [5, 7]))
    # qkv: 2x64 @ 64x96 (+96 bias)
    assert (ops["qkv"].flops, ops["qkv"].bytes) == (2 * 2 * 64 * 96, (64 * 96 + 96) * 4 + (2 * 64 + 2 * 96) * 4)
    assert (ops["o"].flops, ops["o"].bytes) == (2 * 2 * 32 * 64, (32 * 64 + 64) * 4 + (2 * 32 + 2 * 64) * 4)
    assert (ops["up"].flops, ops["up"].bytes) == (16_384, (64 * 64 + 64) * 4 + (128 + 128) * 4)
    assert (ops["attn_decode"].flops, ops["attn_decode"].bytes) == (4 * 12 * 16 * 2, 12 * 2 * 2 * 16 * 4 + 2 * 8 * 16 * 4)
    assert "rope" not in ops and ops["act"].bytes == 2 * 2 * 64 * 4  # ReLU: read + write
    assert ops["embed"].bytes == 3 * 2 * 64 * 4  # token row + learned position row + output
    work = iteration_work(list(ops.values()))
    assert work.flops == 2 * (24_576 + 8_192 + 16_384 + 16_384 + 1_536) + 2 * 2 * 64 * 128  # 166,912
    assert work.bytes == 2 * (26_240 + 9_216 + 17_664 + 17_664 + 4_096 + 4_608) + 34_304 + 1_536 + 1_024  # 195,840
    # all-reduce: 2 per layer + the vocab-parallel embedding, 2 tokens x 64 x 4 bytes each
    assert (ops["all_reduce"].count, ops["all_reduce"].bytes, work.all_reduce_bytes) == (5, 512, 2_560)


def test_operator_times_follow_the_formulas():
    hw = get_hardware("a100-80gb")
    e = hw.efficiency
    op = ops_by_name("llama-2-7b", 1, BatchShape.uniform(num_prefills=1, prompt_tokens=512))["qkv"]
    t_c = op.flops / (hw.peak_flops * e.compute_efficiency * 512 / (512 + e.half_efficiency_tokens))
    t_m = op.bytes / (hw.hbm_bytes_per_s * e.memory_efficiency)
    p = e.overlap_exponent
    assert op_time_s(op, hw, 1) == e.gemm_overhead_s + (t_c**p + t_m**p) ** (1 / p)
    ar = ops_by_name("llama-2-7b", 4, BatchShape.uniform(num_decodes=8, context_tokens=100))["all_reduce"]
    assert op_time_s(ar, hw, 4) == e.all_reduce_latency_s + 2.0 * 3 / 4 * (8 * 4096 * 2) / e.all_reduce_bus_bytes_per_s


def test_capacity_by_hand():
    # OPT-13B: 12,853,473,280 parameters in fp16 (as transformers builds it); 80 GiB x 0.9 usable.
    b = kv_budget(get_model("opt-13b"), get_hardware("a100-80gb"), 1, 1, MemoryConfig())
    assert b.weight_bytes_per_gpu == 12_853_473_280 * 2
    # 1 GiB runtime + 2048 tokens x ((4*5120 + 15360 + 3*20480) * 2 bytes + 50272 fp32 logits)
    assert b.activation_reserve_bytes == 2**30 + 2048 * ((4 * 5120 + 15360 + 3 * 20480) * 2 + 4 * 50272)
    assert b.device_kv_bytes_per_gpu == int(80 * GIB * 0.9) - 25_706_946_560 - 1_884_028_928
    assert b.kv_bytes_per_token_per_gpu == 819_200
    assert (b.device_tokens, b.host_tokens) == (49_718_435_840 // 819_200, 64 * GIB // 819_200)  # 60,691 and 83,886


def test_capacity_splits_over_tp_and_pp():
    b = kv_budget(get_model("opt-175b"), get_hardware("a100-80gb"), 8, 2, MemoryConfig(host_kv_bytes_per_gpu=10 * GIB))
    assert b.kv_bytes_per_token_per_gpu == 2 * 48 * 12 * 128 * 2  # 48 layers per stage, 12 heads per rank
    assert b.host_tokens == 10 * GIB // b.kv_bytes_per_token_per_gpu


def test_model_that_does_not_fit():
    with pytest.raises(ModelDoesNotFitError, match=r"llama-2-70b does not fit on a100-80gb at tp=1 pp=1: weights "
                                                   r"need 128\.\d GiB .* raise tp or pp"):
        roofline_profile("llama-2-70b", "a100-80gb")


def test_cpu_is_measured_only_and_bad_parallelism_is_refused():
    with pytest.raises(MeasuredOnlyError, match="hardware 'cpu' is measured-only: no roofline; profile it with"):
        roofline_profile("tiny-llama", "cpu")
    with pytest.raises(ValueError, match="tp 3 must divide llama-2-7b's 32 attention heads"):
        roofline_profile("llama-2-7b", "a100-80gb", tp=3)
    with pytest.raises(ValueError, match=r"pp must be in 1\.\.32 \(the layers of llama-2-7b\), got 33"):
        roofline_profile("llama-2-7b", "a100-80gb", pp=33)


@pytest.mark.parametrize("model", ["opt-175b", "gpt3-175b"])
def test_paper_16_gpu_setup(model):
    p = roofline_profile(model, "a100-80gb", tp=8, pp=2)
    cm = profiles.cost_model(p)
    assert (cm.tp, cm.pp, p.hardware["num_gpus"]) == (8, 2, 16)
    e = get_hardware("a100-80gb").efficiency  # 16 GPUs span two nodes: stage boundary over InfiniBand
    assert cm.pp_send_recv_s(2048) == pytest.approx(e.internode_latency_s + 2048 * 12288 * 2 / e.internode_bytes_per_s)
    assert cm.swap_s(1000, "out") == pytest.approx(10e-6 + 1000 * p.kv_bytes_per_token / 16 / (32e9 * 0.8))
    assert p.all_reduce is not None and cm.device_kv_tokens > 0


def test_grids_interpolate_within_half_a_percent_of_the_formulas():
    p = roofline_profile("llama-2-7b", "h100-sxm", tp=2)
    cm, hw, spec = profiles.cost_model(p), get_hardware("h100-sxm"), p.model
    rng = np.random.default_rng(7)
    for _ in range(300):
        b, n = int(rng.integers(1, 65)), int(rng.integers(1, 4097))
        direct = iteration_time_s(spec, hw, 2, BatchShape.uniform(num_prefills=b, prompt_tokens=n))
        assert cm.iteration_s([n] * b, []) == pytest.approx(direct, rel=5e-3)
        b = int(rng.integers(1, 513))
        direct = iteration_time_s(spec, hw, 2, BatchShape.uniform(num_decodes=b, context_tokens=n))
        assert cm.iteration_s([], [n] * b) == pytest.approx(direct, rel=5e-3)


def test_mixed_batches_within_five_percent_of_one_fused_pass():
    p = profiles.load_profile("opt-13b_a100-80gb_tp1")
    cm, hw = profiles.cost_model(p), get_hardware("a100-80gb")
    rng = np.random.default_rng(3)
    for _ in range(200):
        prompts = [int(v) for v in rng.integers(1, 2049, size=int(rng.integers(1, 5)))]
        contexts = [int(v) for v in rng.integers(1, 2049, size=int(rng.integers(1, 65)))]
        direct = iteration_time_s(p.model, hw, 1, BatchShape.of(prompts, contexts))
        assert cm.iteration_s(prompts, contexts) == pytest.approx(direct, rel=0.05)


def test_token_axis_and_catalog():
    assert token_axis(20) == (1, 2, 3, 4, 6, 8, 12, 16, 20)
    assert token_axis(2048)[-3:] == (1024, 1536, 2048)
    assert {"a100-40gb", "a100-80gb", "h100-sxm", "h200", "l4", "a10g", "cpu"} <= set(HARDWARE)
    for name in ("a100-40gb", "h200", "l4", "a10g"):  # every roofline target produces a profile
        assert roofline_profile("llama-2-7b", name, max_tokens=64).device_kv_tokens > 0
