"""Float64 sequential references: the normative definitions, used as test oracles.

These are written from the definitions of shared/spec/mixers.md (section 2.1 for
the jagged window), one time step at a time, independent of the compiled code.
Layout is [batch, time, channels] like mixir.ops.scan.
"""

from __future__ import annotations

import numpy as np

__all__ = ["scan_ref", "scan_ref_torch", "swr_ref", "linear_attention_ref"]


def _as_f64(x) -> np.ndarray:
    x = x.detach().cpu() if hasattr(x, "detach") else x
    if hasattr(x, "numpy"):
        import torch
        x = x.to(torch.complex128 if x.is_complex() else torch.float64).numpy()
    x = np.asarray(x)
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def scan_ref(a, b, initial_state=None, reverse=False, log_space=False, window=None):
    """h_t = a_t h_{t-1} + b_t (or the jagged sliding-window recurrence), in float64.

    window: None / "global", or ("jagged", block, k). Returns (h, final_state) as
    numpy arrays; for a jagged window the final state is the zero-initialised
    local state of the last processed step (spec 2.1 / mixer.scan docs).
    """
    a, b = _as_f64(a), _as_f64(b)
    if log_space:
        a = np.exp(a)
    dtype = np.complex128 if (np.iscomplexobj(a) or np.iscomplexobj(b)) else np.float64
    B, T, D = b.shape
    h0 = np.zeros((B, D), dtype) if initial_state is None else _as_f64(initial_state).astype(dtype)
    out = np.zeros((B, T, D), dtype)
    order = range(T - 1, -1, -1) if reverse else range(T)

    if window is None or window == "global":
        h = h0.copy()
        for t in order:
            h = a[:, t] * h + b[:, t]
            out[:, t] = h
        return out, h

    _, block, k = window
    # Jagged, from the closed form of spec 2.1: y_t is the exact recurrence
    # restarted from zero at the start of the previous block (k = 2) or of its
    # own block (k = 1); the first block processed starts from c_init instead.
    # Reverse keeps blocks aligned to absolute position 0: pad the end to a whole
    # block with a = 1, b = 0 (which changes no output), flip, run forward.
    pad = (-T) % block
    if pad:
        a = np.concatenate([a, np.ones((B, pad, a.shape[2]), a.dtype)], axis=1)
        b = np.concatenate([b, np.zeros((B, pad, D), b.dtype)], axis=1)
    if reverse:
        a, b = a[:, ::-1], b[:, ::-1]
    y, final = _jagged_forward(a, b, h0, block, k)
    if reverse:
        y = y[:, ::-1]
    return np.ascontiguousarray(y[:, :T]), final


def _jagged_forward(a, b, h0, block, k):
    B, P, D = b.shape
    nb = P // block
    A = np.broadcast_to(a, b.shape).reshape(B, nb, block, D)
    U = b.reshape(B, nb, block, D)
    # The block before each block; before block 0 stands a virtual block whose
    # zero-initialised terminal state is c_init (zeros, then c_init last).
    virtual_u = np.zeros((B, 1, block, D), U.dtype)
    virtual_u[:, 0, -1] = h0
    prev_u = np.concatenate([virtual_u, U[:, :-1]], axis=1)
    prev_a = np.concatenate([np.ones((B, 1, block, D), A.dtype), A[:, :-1]], axis=1)
    dtype = np.result_type(A.dtype, U.dtype)
    h = np.zeros((B, nb, D), dtype)
    if k == 2:
        for j in range(block):
            h = prev_a[:, :, j] * h + prev_u[:, :, j]
    out = np.empty((B, nb, block, D), dtype)
    for j in range(block):
        h = A[:, :, j] * h + U[:, :, j]
        out[:, :, j] = h
    # Final state: the last block's own recurrence from zero.
    local = np.zeros((B, D), dtype)
    for j in range(block):
        local = A[:, -1, j] * local + U[:, -1, j]
    return out.reshape(B, P, D), local


def scan_ref_torch(a, b, initial_state=None, reverse=False, log_space=False, window=None):
    """Differentiable float64 reference (torch), for gradient tests on short sequences.

    Global: the sequential recurrence. Jagged: the closed form of spec 2.1, term by
    term: y_t = sum_s (prod_{r in (s, t]} a_r) u_s over s from the start of the
    previous block (k = 2) or of t's own block (k = 1), plus, in the first block
    processed, (prod a) c_init. Reverse mirrors it with blocks kept at absolute
    positions. O(T * block) autograd nodes: keep T small.
    """
    import torch
    state = torch.complex128 if (a.is_complex() or b.is_complex()) else torch.float64
    a, b = a.to(state), b.to(state)
    if log_space:
        a = a.exp()
    B, T, D = b.shape
    c0 = torch.zeros(B, D, dtype=state) if initial_state is None else initial_state.to(state)
    order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    if window is None or window == "global":
        h, out = c0, []
        for t in order:
            h = a[:, t] * h + b[:, t]
            out.append(h)
        if reverse:
            out = out[::-1]
        return torch.stack(out, 1), h
    _, block, k = window

    def block_of(t):
        return t // block

    def span(t, start):  # sum over s between start and t (in processing order)
        y = torch.zeros(B, D, dtype=state)
        steps = range(start, t + 1) if not reverse else range(start, t - 1, -1)
        for s in steps:
            y = a[:, s] * y + b[:, s]
        return y

    first_block = block_of(order[0])
    ys = []
    for t in range(T):
        beta = block_of(t)
        if not reverse:
            own = beta * block
            start = own - block if (k == 2 and beta > 0) else own
            y = span(t, start)
            if k == 2 and beta == first_block:
                y = y + torch.prod(a[:, :t + 1], 1) * c0
        else:
            own = min(T - 1, beta * block + block - 1)
            nxt = min(T - 1, (beta + 2) * block - 1)
            start = nxt if (k == 2 and beta != first_block) else own
            y = span(t, start)
            if k == 2 and beta == first_block:
                y = y + torch.prod(a[:, t:], 1) * c0
        ys.append(y)
    final_t = order[-1]
    final = span(final_t, block_of(final_t) * block if not reverse
                 else min(T - 1, block_of(final_t) * block + block - 1))
    return torch.stack(ys, 1), final


def swr_ref(coeff, x, k=2, c_init=None):
    """The sliding window recurrence of spec 2.1 in BTP layout, in float64, one step at
    a time: coeff [B, H, L] (one gate per head), x [B, H, 16, L], c_init [B, H, 16].

    Per step t (vectorised over batch, head and channel only): the block-local scan
    l_t (restarted from zero at each 16-aligned block start), the inclusive in-block
    gate product r_t, the carry c = l at the previous block's last step (c_init before
    block 0), and y_t = l_t + r_t c (k = 2) or l_t (k = 1). Returns y [B, H, 16, L].
    """
    a, u = _as_f64(coeff), _as_f64(x)
    B, H, D, L = u.shape
    carry = np.zeros((B, H, D)) if c_init is None else _as_f64(c_init)
    local = np.zeros((B, H, D))
    r = np.ones((B, H))
    y = np.zeros((B, H, D, L))
    for t in range(L):
        if t % 16 == 0:
            if t > 0:
                carry = local
            local, r = np.zeros((B, H, D)), np.ones((B, H))
        local = a[:, :, t, None] * local + u[:, :, :, t]
        r = r * a[:, :, t]
        y[:, :, :, t] = local + (r[:, :, None] * carry if k == 2 else 0.0)
    return y


def linear_attention_ref(q, k, v, g=None, beta=None, scale=None, initial_state=None,
                         cu_seqlens=None, corrected_values=False):
    """Linear attention with a matrix state, one step at a time in float64 (spec 4.7,
    fla's semantics; layout [B, T, H, d]). Per sequence and head, S_{-1} = initial_state:

        S <- D_t S;  u_t = v_t, or beta_t (v_t - S^T k_t) (delta rule, beta given)
        S <- S + k_t u_t^T;  o_t = scale S^T q_t

    with D_t = 1 (g None), exp(g_t) (g [B, T, H]) or diag(exp(g_t)) (g [B, T, H, K]).
    cu_seqlens: packed sequences of the single batch row; states are then
    [N, H, K, V]. Returns (o [B, T, H, V], final_state [N, H, K, V]) as float64 CPU
    tensors, differentiable in every input that requires grad (the gradient oracle).
    corrected_values: also return every step's u_t ([B, T, H, V]).
    """
    import torch

    def f64(x):
        return None if x is None else torch.as_tensor(x).to("cpu", torch.float64)

    q, k, v, g, beta = f64(q), f64(k), f64(v), f64(g), f64(beta)
    B, T, H, K = k.shape
    V = v.shape[-1]
    scale = K ** -0.5 if scale is None else float(scale)
    if cu_seqlens is None:
        spans = [(n, 0, T) for n in range(B)]
    else:
        cu = [int(x) for x in (cu_seqlens.tolist() if hasattr(cu_seqlens, "tolist") else cu_seqlens)]
        spans = [(0, cu[i], cu[i + 1]) for i in range(len(cu) - 1)]
    N = len(spans)
    S0 = f64(initial_state) if initial_state is not None else torch.zeros(N, H, K, V,
                                                                          dtype=torch.float64)
    steps, updates = {}, {}
    finals = []
    for i, (row, t0, t1) in enumerate(spans):
        S = S0[i]  # [H, K, V]
        for t in range(t0, t1):
            if g is not None:
                decay = torch.exp(g[row, t])  # [H] or [H, K]
                S = S * (decay[:, None, None] if decay.dim() == 1 else decay[:, :, None])
            kt, vt = k[row, t], v[row, t]  # [H, K], [H, V]
            if beta is not None:
                vt = beta[row, t][:, None] * (vt - torch.einsum("hkv,hk->hv", S, kt))
            S = S + kt[:, :, None] * vt[:, None, :]
            steps[row, t] = scale * torch.einsum("hkv,hk->hv", S, q[row, t])
            updates[row, t] = vt
        finals.append(S)
    zero = torch.zeros(H, V, dtype=torch.float64)

    def by_row(per_step):
        return torch.stack([torch.stack([per_step.get((r, t), zero) for t in range(T)])
                            if T else torch.zeros(0, H, V, dtype=torch.float64)
                            for r in range(B)])

    if corrected_values:
        return by_row(steps), torch.stack(finals), by_row(updates)
    return by_row(steps), torch.stack(finals)


def mlstm_ref(q, k, v, i, f, c_initial=None, n_initial=None, m_initial=None, eps=1e-6):
    """The mLSTM cell, stabilised recurrent form, one step at a time in float64 (spec
    3.1; mlstm_kernels' layout: q, k [B, NH, S, DHQK], v [B, NH, S, DHV], gate
    pre-activations i, f [B, NH, S]; states c [B, NH, DHQK, DHV], n [B, NH, DHQK],
    m [B, NH, 1], zero unless given):

        m_t = max(logsigmoid(f_t) + m_{t-1}, i_t)
        f'_t = exp(logsigmoid(f_t) + m_{t-1} - m_t),  i'_t = exp(i_t - m_t)
        C_t = f'_t C_{t-1} + i'_t k_t v_t^T,  n_t = f'_t n_{t-1} + i'_t k_t
        h_t = C_t^T q^_t / (max(|n_t . q^_t|, exp(-m_t)) + eps),  q^_t = q_t / sqrt(DHQK)

    Returns (h [B, NH, S, DHV], (c, n, m)) as float64 CPU tensors."""
    import torch

    def f64(x):
        return None if x is None else torch.as_tensor(x).to("cpu", torch.float64)

    q, k, v, i, f = f64(q), f64(k), f64(v), f64(i), f64(f)
    B, NH, S, K = q.shape
    V = v.shape[-1]
    C = f64(c_initial) if c_initial is not None else torch.zeros(B, NH, K, V, dtype=torch.float64)
    n = f64(n_initial) if n_initial is not None else torch.zeros(B, NH, K, dtype=torch.float64)
    m = f64(m_initial).reshape(B, NH) if m_initial is not None else torch.zeros(
        B, NH, dtype=torch.float64)
    logf = torch.nn.functional.logsigmoid(f)
    hs = []
    for t in range(S):
        m_new = torch.maximum(logf[:, :, t] + m, i[:, :, t])
        fa = torch.exp(logf[:, :, t] + m - m_new)[..., None]
        ia = torch.exp(i[:, :, t] - m_new)[..., None]
        kt, vt, qt = k[:, :, t], v[:, :, t], q[:, :, t] * K ** -0.5
        C = fa[..., None] * C + ia[..., None] * kt[..., :, None] * vt[..., None, :]
        n = fa * n + ia * kt
        num = torch.einsum("bhkv,bhk->bhv", C, qt)
        den = torch.einsum("bhk,bhk->bh", n, qt).abs()
        hs.append(num / (torch.maximum(den, torch.exp(-m_new)) + eps)[..., None])
        m = m_new
    h = torch.stack(hs, dim=2) if S else torch.zeros(B, NH, 0, V, dtype=torch.float64)
    return h, (C, n, m[..., None])


def mlstm_parallel_ref(q, k, v, i, f, eps=1e-6):
    """The mLSTM cell's unstabilised parallel form (spec 3.1's mathematical target)
    in float64, from zero states: with w_ts = exp(sum_{r=s+1..t} logsigmoid(f_r) + i_s)
    for s <= t, h_t = num_t / max(|den_t|, 1), num_t = sum_s w_ts (q^_t . k_s) v_s and
    den_t = sum_s w_ts (q^_t . k_s). Equals mlstm_ref with eps = 0 (the stabilised
    form's eps acts on the scaled denominator); an independent check of that oracle
    for short sequences with moderate gates (exp(i) must not overflow)."""
    import torch

    q, k, v, i, f = [torch.as_tensor(x).to("cpu", torch.float64) for x in (q, k, v, i, f)]
    S, K = q.shape[2], q.shape[3]
    logf = torch.nn.functional.logsigmoid(f)
    csum = torch.cumsum(logf, dim=-1)  # [B, NH, S]
    # log w_ts = csum_t - csum_s + i_s for s <= t
    logw = csum[..., :, None] - csum[..., None, :] + i[..., None, :]
    causal = torch.ones(S, S, dtype=torch.bool).tril()
    w = torch.where(causal, torch.exp(logw), torch.zeros((), dtype=torch.float64))
    scores = torch.einsum("bhtk,bhsk->bhts", q * K ** -0.5, k) * w
    num = torch.einsum("bhts,bhsv->bhtv", scores, v)
    den = scores.sum(-1).abs()
    return num / (torch.maximum(den, torch.ones_like(den)))[..., None]
