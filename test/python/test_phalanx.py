"""mixir.nn.Phalanx (spec 2.6) and its streaming state (spec 2.5, test 2.7.6).

The layer's three paths (compiled scan, log-space and linear-space PyTorch forms)
must agree; prefill + decode must reproduce the one-shot forward at every split.
"""

import pytest
import torch

import mixir
from mixir.nn import Phalanx
from mixir.nn.phalanx import inference
from mixir.reference import swr_ref

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def layer_and_input(device, dim=64, heads=None, kv_heads=None, L=50, k=2, B=2,
                    recurrence_dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    layer = Phalanx(dim, heads=heads, kv_heads=kv_heads, k=k,
                    recurrence_dtype=recurrence_dtype).to(device)
    x = torch.randn(B, L, dim, device=device)
    return layer, x


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("kv_heads", [None, 2])
@pytest.mark.parametrize("L", [1, 16, 50, 300])
def test_three_paths_agree(device, k, kv_heads, L):
    """Spec 2.7.7: default, pytorch and pytorch_linspace agree to 1e-5 (fp32)."""
    layer, x = layer_and_input(device, kv_heads=kv_heads, L=L, k=k)
    y = {m: layer(x, method=m) for m in mixir.nn.phalanx.METHODS}
    assert rel(y["default"], y["pytorch"]) <= 1e-5
    assert rel(y["pytorch_linspace"], y["pytorch"]) <= 1e-5


def test_recurrence_matches_oracle():
    """The layer's recurrence against the float64 oracle on the same A and X."""
    layer, x = layer_and_input("cpu", L=48)
    A, X, _, _ = layer.gates(x)
    Y = layer.recurrence(A, X)
    B, L, D = X.shape
    ref = swr_ref(A.transpose(1, 2).detach(), X.view(B, L, 4, 16).permute(0, 2, 3, 1).detach(), 2)
    ref = torch.as_tensor(ref).permute(0, 3, 1, 2).reshape(B, L, D)
    assert rel(Y.double(), ref) <= 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_layer_limits(device):
    """bf16 module and recurrence inputs against the fp32 reference path: upstream's
    layer limits (max 0.1, rmse 5e-2)."""
    layer, x = layer_and_input(device, L=256)
    ref = layer(x, method="pytorch")
    layer16 = Phalanx(64, recurrence_dtype=torch.bfloat16).to(device)
    layer16.load_state_dict(layer.state_dict())
    y = layer16.to(torch.bfloat16)(x.bfloat16()).float()
    d = y - ref
    assert d.abs().max() <= 0.1 and d.pow(2).mean().sqrt() <= 5e-2


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_agree(device):
    """Parameter gradients through the compiled path equal those through the
    log-space reference path (fp32, 1e-4 relative)."""
    layer, x = layer_and_input(device, L=40)
    grads = {}
    for m in ("default", "pytorch"):
        layer.zero_grad()
        layer(x, method=m).pow(2).sum().backward()
        grads[m] = [p.grad.clone() for p in layer.parameters()]
    for g, r in zip(grads["default"], grads["pytorch"]):
        assert rel(g, r) <= 1e-4


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2])
def test_streaming_every_split(device, k):
    """Spec 2.7.6: prefill [0, P) then decode token by token to 64, P = 0..40: outputs
    and the final state equal the one-shot path (fp32, max_abs <= 1e-6)."""
    layer, x = layer_and_input(device, L=64, k=k)
    full = layer(x)
    _, final = inference.prefill(layer, x)
    for P in range(41):
        out, state = inference.prefill(layer, x[:, :P])
        outs = [out]
        for t in range(P, 64):
            y, state = inference.step(layer, x[:, t], state)
            outs.append(y[:, None])
        got = torch.cat(outs, 1)
        assert (got - full).abs().max() <= 1e-6, P
        for name in ("h_loc", "r", "c_prev"):
            assert (getattr(state, name) - getattr(final, name)).abs().max() <= 1e-6, (P, name)
        assert torch.equal(state.i, final.i)


@pytest.mark.parametrize("device", DEVICES)
def test_sequential_prefill_equals_parallel(device):
    layer, x = layer_and_input(device, L=37)
    out_p, sp = inference.prefill(layer, x)
    out_s, ss = inference.prefill(layer, x, mode="sequential")
    assert (out_p - out_s).abs().max() <= 1e-6
    for name in ("h_loc", "r", "c_prev"):
        assert (getattr(sp, name) - getattr(ss, name)).abs().max() <= 1e-6
    assert torch.equal(sp.i, ss.i) and int(sp.i[0]) == 37 % 16


@pytest.mark.parametrize("device", DEVICES)
def test_decode_with_different_offsets(device):
    """Sequences of one batch at different block offsets decode in one step."""
    layer, x = layer_and_input(device, L=48, B=2)
    full = layer(x)
    _, s0 = inference.prefill(layer, x[:1, :13])
    _, s1 = inference.prefill(layer, x[1:, :16])
    state = inference.JagState(*(torch.cat([getattr(s0, f), getattr(s1, f)])
                                 for f in ("h_loc", "r", "c_prev", "i")))
    t0, t1 = 13, 16
    for _ in range(20):
        xt = torch.stack([x[0, t0], x[1, t1]])
        y, state = inference.step(layer, xt, state)
        assert (y[0] - full[0, t0]).abs().max() <= 1e-6
        assert (y[1] - full[1, t1]).abs().max() <= 1e-6
        t0, t1 = t0 + 1, t1 + 1


def test_prompt_on_block_boundary_restarts_local_state():
    """Spec [OBS-2]: a prompt ending on a block boundary leaves h_loc = 0, r = 1 and the
    finished block in c_prev."""
    layer, x = layer_and_input("cpu", L=32)
    _, state = inference.prefill(layer, x)
    assert torch.equal(state.h_loc, torch.zeros_like(state.h_loc))
    assert torch.equal(state.r, torch.ones_like(state.r))
    assert state.c_prev.abs().max() > 0 and int(state.i[0]) == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(dim=40), "multiple of the head dim"),
    (dict(dim=64, heads=3), "dim must be 16 \\* heads"),
    (dict(dim=64, kv_heads=3), "must divide heads"),
    (dict(dim=64, method="cuda"), "method must be one of"),
    (dict(dim=64, k=3), "k must be 1 or 2"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Phalanx(**kwargs)


def test_forward_errors():
    layer = Phalanx(32)
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="x_t must be"):
        inference.step(layer, torch.randn(2, 5, 32), inference.init_state(layer, 2))
