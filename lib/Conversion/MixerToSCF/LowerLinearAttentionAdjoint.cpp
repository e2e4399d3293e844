//===- LowerLinearAttentionAdjoint.cpp - the adjoint, checkpointed --------===//
//
// mixer.linear_attention_adjoint as a reverse sweep over checkpointed states.
//
// The adjoint of step t needs S_{t-1} and S_t while it runs against time, and
// the delta rule's transition I - beta k k^T is not safely invertible, so the
// states are recomputed rather than run backwards. Per (head, sequence):
//
//   1. the forward from S_{-1}, keeping S at the start of every chunk of C
//      steps (checkpoint c = the state before step c C);
//   2. for every chunk, last first: its C states recomputed from its
//      checkpoint, then the adjoint of its steps, last first.
//
// Both forward passes are the recurrent lowering's steps (LinearAttentionSteps
// .cpp) on one value column at a time, so the adjoint differentiates exactly
// the states the forward computes. The state gradient L (and the mLSTM
// normaliser's) lives in scratch next to the states; each adjoint step
// walks the value columns once, since every state column evolves on its own,
// and sums the per-column contributions to dq, dk, the decay and beta over
// the walk.
//
// One sequential program per (head, sequence) in an scf.parallel: the CPU
// path and the GPU's fallback. A chunked tensor-core adjoint is future work.
//
// Scratch (state type, [1, H, slots, K', V'], K' = K + 1 and V' = V + 1 for
// the mLSTM cell: column V holds n, element (K, 0) holds m): per head, the
// checkpoints of every sequence, then per sequence C recomputed states and L.
// A sequence that starts at packed position p (row r of length T: p = r T +
// start) keeps its checkpoints from slot floor(p / C) + n: a sequence of
// length l needs ceil(l / C) <= floor((p + l) / C) - floor(p / C) + 1 of
// them, so regions never overlap, and all of them fit in
// floor(R T / C) + N + 1 slots, without reading the offsets on the host.
//
//===----------------------------------------------------------------------===//

#include "../LinearAttentionCommon.h"
#include "../Scratch.h"
#include "mixir/Dialect/Mixer/Mixer.h"
#include "mixir/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <functional>

namespace mlir::mixer {
#define GEN_PASS_DEF_MIXERLOWERLINEARATTENTIONADJOINT
#include "Mixer/MixerPasses.h.inc"
} // namespace mlir::mixer

using namespace mlir;
using namespace mlir::mixer;

namespace {

/// Emits the adjoint of one op inside the parallel iteration of (h, n).
struct AdjointEmitter {
  ImplicitLocOpBuilder &b;
  LinearAttentionAdjointOp op;
  RecurrenceOperands operands;
  Type state;
  int64_t K, V;
  bool mlstm;
  // Set by the caller once inside the parallel body.
  Value n, h, hq, row, scale;
  Value scratch; // [1, H, slots, K', V'] (see the file comment)

  AdjointEmitter(ImplicitLocOpBuilder &b, LinearAttentionAdjointOp op)
      : b(b), op(op), operands(RecurrenceOperands::of(op)), state(op.getStateElementType()),
        K(op.getKeyDim()), V(op.getValueDim()), mlstm(op.isMlstm()) {}

  Value idx(int64_t i) { return arith::ConstantIndexOp::create(b, i); }
  Value cst(double x) { return arith::ConstantOp::create(b, b.getFloatAttr(state, x)); }
  Value add(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value sub(Value x, Value y) { return arith::SubFOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value fma(Value x, Value y, Value z) { return math::FmaOp::create(b, x, y, z); }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  Value addi(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value subi(Value x, Value y) { return arith::SubIOp::create(b, x, y); }
  Value muli(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value select(Value c, Value x, Value y) { return arith::SelectOp::create(b, c, x, y); }

  /// Element (i, j) of workspace slot `slot` (a state, or the state gradient;
  /// for the mLSTM cell column V holds n and (K, 0) holds m).
  Value load(Value slot, Value i, Value j) {
    return memref::LoadOp::create(b, scratch, ValueRange{idx(0), h, slot, i, j});
  }
  void store(Value x, Value slot, Value i, Value j) {
    memref::StoreOp::create(b, x, scratch, ValueRange{idx(0), h, slot, i, j});
  }
  /// Stores `x` into a gradient destination, in its element type.
  void storeGrad(Value x, Value dest, ValueRange indices) {
    Type elt = cast<MemRefType>(dest.getType()).getElementType();
    memref::StoreOp::create(b, truncTo(b, elt, x), dest, indices);
  }
  /// The [B, T, Hq, K] row of query or key at step t, extended to the state type.
  SmallVector<Value> headRow(Value memref, Value t) {
    SmallVector<Value> xs;
    for (int64_t d = 0; d < K; ++d)
      xs.push_back(loadAs(b, state, memref, ValueRange{row, t, hq, idx(d)}));
    return xs;
  }
  Value dot(ArrayRef<Value> x, ArrayRef<Value> y) {
    Value acc = cst(0.0);
    for (auto [a, c] : llvm::zip(x, y))
      acc = fma(a, c, acc);
    return acc;
  }

  /// An scf.for over [lb, ub) carrying `inits`; `body(iv, carried)` returns the
  /// values to yield. Returns the loop's results.
  SmallVector<Value> loop(Value lb, Value ub, ValueRange inits,
                          const std::function<SmallVector<Value>(Value, ValueRange)> &body) {
    auto forOp = scf::ForOp::create(b, lb, ub, idx(1), inits);
    OpBuilder::InsertionGuard guard(b);
    // Without carried values the builder adds the (empty) yield itself.
    if (!forOp.getBody()->empty())
      forOp.getBody()->getTerminator()->erase();
    b.setInsertionPointToStart(forOp.getBody());
    SmallVector<Value> next = body(forOp.getInductionVar(), forOp.getRegionIterArgs());
    scf::YieldOp::create(b, next);
    return SmallVector<Value>(forOp.getResults());
  }

  /// Writes the state before the first step into slot `slot`.
  void emitInitialState(Value slot) {
    loop(idx(0), idx(V), {}, [&](Value j, ValueRange) {
      for (int64_t d = 0; d < K; ++d) {
        Value init = op.getInitialState();
        store(init ? loadAs(b, state, init, ValueRange{n, h, idx(d), j}) : cst(0.0), slot,
              idx(d), j);
      }
      return SmallVector<Value>{};
    });
    if (!mlstm)
      return;
    for (int64_t d = 0; d < K; ++d) {
      Value init = op.getInitialNormalizer();
      store(init ? loadAs(b, state, init, ValueRange{n, h, idx(d)}) : cst(0.0), slot, idx(d),
            idx(V));
    }
    Value m0 = op.getInitialStabilizer();
    store(m0 ? loadAs(b, state, m0, ValueRange{n, h}) : cst(0.0), slot, idx(K), idx(0));
  }

  /// The forward step t from the state in slot `src` into slot `dst` (they
  /// may be the same: each column is read before it is written, and the
  /// mLSTM's n and m are written after the last column).
  void emitForwardStep(Value src, Value dst, Value t) {
    SmallVector<Value> keys = headRow(op.getKey(), t);
    SmallVector<Value> inits(mlstm ? K + 1 : 0, cst(0.0));
    SmallVector<Value> last = loop(idx(0), idx(V), inits, [&](Value j, ValueRange) {
      SmallVector<Value> carried;
      for (int64_t d = 0; d < K; ++d)
        carried.push_back(load(src, idx(d), j));
      if (mlstm) {
        for (int64_t d = 0; d < K; ++d)
          carried.push_back(load(src, idx(d), idx(V)));
        carried.push_back(load(src, idx(K), idx(0)));
        emitMlstmStep(b, operands, state, carried, keys, row, t, h, hq, j, scale, Value());
      } else {
        emitLinearStep(b, operands, state, carried, keys, row, t, h, hq, j, scale, Value());
      }
      for (int64_t d = 0; d < K; ++d)
        store(carried[d], dst, idx(d), j);
      return SmallVector<Value>(carried.begin() + K, carried.end());
    });
    // Every column computed the same n and m: the last one's are written.
    if (mlstm) {
      for (int64_t d = 0; d < K; ++d)
        store(last[d], dst, idx(d), idx(V));
      store(last[K], dst, idx(K), idx(0));
    }
  }

  /// The adjoint of step t of the linear recurrence, with S_{t-1} in slot
  /// `prev`, S_t in slot `cur` and the gradient L_t (without the output's
  /// share at t) in slot `lam`, which receives L_{t-1}.
  void emitLinearAdjointStep(Value prev, Value cur, Value lam, Value t) {
    bool delta = static_cast<bool>(op.getBeta());
    Value g = op.getLogDecay();
    bool vectorDecay = op.hasVectorDecay();
    SmallVector<Value> q = headRow(op.getQuery(), t), k = headRow(op.getKey(), t);
    SmallVector<Value> scaledQ, decay;
    for (Value x : q)
      scaledQ.push_back(mul(scale, x));
    if (g) {
      Value shared = vectorDecay ? Value() : exp(loadAs(b, state, g, ValueRange{row, t, h}));
      for (int64_t d = 0; d < K; ++d)
        decay.push_back(shared ? shared
                               : exp(loadAs(b, state, g, ValueRange{row, t, h, idx(d)})));
    }
    Value beta = delta ? loadAs(b, state, op.getBeta(), ValueRange{row, t, h}) : Value();
    // Carried over the columns: dq (K), dk (K), the decay's gradient (K per key
    // dimension, 1 per head, 0 without decay), dbeta (delta rule).
    int64_t nDecay = !g ? 0 : vectorDecay ? K : 1;
    SmallVector<Value> inits(2 * K + nDecay + (delta ? 1 : 0), cst(0.0));
    SmallVector<Value> sums = loop(idx(0), idx(V), inits, [&](Value j, ValueRange acc) {
      SmallVector<Value> next(acc);
      Value dout = loadAs(b, state, op.getOutputGrad(), ValueRange{row, t, h, j});
      Value vj = loadAs(b, state, op.getValue(), ValueRange{row, t, h, j});
      SmallVector<Value> L, decayedPrev;
      for (int64_t d = 0; d < K; ++d) {
        L.push_back(fma(scaledQ[d], dout, load(lam, idx(d), j))); // + scale q do^T
        next[d] = fma(load(cur, idx(d), j), dout, next[d]);       // (S_t do)_d
        if (g || delta) {
          Value p = load(prev, idx(d), j);
          decayedPrev.push_back(g ? mul(decay[d], p) : p); // S' = D S_{t-1}
        }
      }
      Value y = dot(L, k); // (L^T k)_j
      Value u = vj, dv = y, betaY;
      if (delta) {
        Value residual = sub(vj, dot(decayedPrev, k)); // v - S'^T k
        u = mul(beta, residual);
        dv = mul(beta, y);
        betaY = dv;
        next.back() = fma(y, residual, next.back());
      }
      storeGrad(dv, op.getValueGrad(), ValueRange{row, t, h, j});
      Value negBetaY = delta ? arith::NegFOp::create(b, betaY).getResult() : Value();
      for (int64_t d = 0; d < K; ++d) {
        Value dk = fma(L[d], u, next[K + d]); // L u
        Value G = L[d];                       // dL/dS'
        if (delta) {
          dk = fma(negBetaY, decayedPrev[d], dk); // - beta S' y
          G = fma(negBetaY, k[d], G);              // L - beta k y^T
        }
        next[K + d] = dk;
        if (g) {
          Value &r = next[2 * K + (vectorDecay ? d : 0)];
          r = fma(G, decayedPrev[d], r);
          G = mul(decay[d], G); // L_{t-1} = D G
        }
        store(G, lam, idx(d), j);
      }
      return next;
    });
    for (int64_t d = 0; d < K; ++d) {
      storeGrad(mul(scale, sums[d]), op.getQueryGrad(), ValueRange{row, t, h, idx(d)});
      storeGrad(sums[K + d], op.getKeyGrad(), ValueRange{row, t, h, idx(d)});
    }
    if (Value dg = op.getLogDecayGrad()) {
      if (vectorDecay)
        for (int64_t d = 0; d < K; ++d)
          storeGrad(sums[2 * K + d], dg, ValueRange{row, t, h, idx(d)});
      else
        storeGrad(sums[2 * K], dg, ValueRange{row, t, h});
    }
    if (Value db = op.getBetaGrad())
      storeGrad(sums.back(), db, ValueRange{row, t, h});
  }

  /// The adjoint of step t of the mLSTM cell (slots as for the linear step;
  /// `lam` column V holds the normaliser's gradient). `mu` is the gradient
  /// reaching m_t from later steps; returns the one reaching m_{t-1}.
  Value emitMlstmAdjointStep(Value prev, Value cur, Value lam, Value t, Value mu) {
    SmallVector<Value> q = headRow(op.getQuery(), t), k = headRow(op.getKey(), t);
    Value logForget =
        op.getLogDecay() ? loadAs(b, state, op.getLogDecay(), ValueRange{row, t, h}) : cst(0.0);
    Value input = loadAs(b, state, op.getInputGate(), ValueRange{row, t, h});
    Value mPrev = load(prev, idx(K), idx(0)), mCur = load(cur, idx(K), idx(0));
    Value decayed = add(logForget, mPrev);
    Value f = exp(sub(decayed, mCur)), e = exp(sub(input, mCur));
    SmallVector<Value> nPrev, nCur;
    for (int64_t d = 0; d < K; ++d) {
      nPrev.push_back(load(prev, idx(d), idx(V)));
      nCur.push_back(load(cur, idx(d), idx(V)));
    }
    // o = num / D, num = scale S_t^T q, D = max(|den|, exp(-m_t)) + eps,
    // den = scale n_t . q.
    Value den = mul(scale, dot(nCur, q));
    Value absDen = math::AbsFOp::create(b, den);
    Value floor = exp(arith::NegFOp::create(b, mCur));
    Value D = add(arith::MaximumFOp::create(b, absDen, floor), cst(operands.epsilon));
    Value invD = arith::DivFOp::create(b, cst(1.0), D);
    // dD = -(do . num) / D^2: one pass over the columns for do . num.
    Value doNum = loop(idx(0), idx(V), {cst(0.0)}, [&](Value j, ValueRange acc) {
      SmallVector<Value> column;
      for (int64_t d = 0; d < K; ++d)
        column.push_back(load(cur, idx(d), j));
      Value dout = loadAs(b, state, op.getOutputGrad(), ValueRange{row, t, h, j});
      return SmallVector<Value>{fma(dout, mul(scale, dot(column, q)), acc[0])};
    })[0];
    Value dD = arith::NegFOp::create(b, mul(doNum, mul(invD, invD)));
    // The denominator's max: to |den| (by den's sign) or to exp(-m_t).
    Value denWins = arith::CmpFOp::create(b, arith::CmpFPredicate::OGE, absDen, floor);
    Value dDen = select(denWins, mul(dD, math::CopySignOp::create(b, cst(1.0), den)), cst(0.0));
    Value dmOut = select(denWins, cst(0.0), arith::NegFOp::create(b, mul(dD, floor)));
    SmallVector<Value> nu; // the normaliser's gradient at t
    for (int64_t d = 0; d < K; ++d)
      nu.push_back(fma(mul(scale, q[d]), dDen, load(lam, idx(d), idx(V))));

    // Over the columns: dq (K), dk (K), de, df.
    SmallVector<Value> inits(2 * K + 2, cst(0.0));
    SmallVector<Value> sums = loop(idx(0), idx(V), inits, [&](Value j, ValueRange acc) {
      SmallVector<Value> next(acc);
      Value dnum = mul(loadAs(b, state, op.getOutputGrad(), ValueRange{row, t, h, j}), invD);
      Value vj = loadAs(b, state, op.getValue(), ValueRange{row, t, h, j});
      SmallVector<Value> L;
      Value df = next[2 * K + 1];
      for (int64_t d = 0; d < K; ++d) {
        L.push_back(fma(mul(scale, q[d]), dnum, load(lam, idx(d), j)));
        next[d] = fma(load(cur, idx(d), j), dnum, next[d]);
        next[K + d] = fma(L[d], vj, next[K + d]);
        df = fma(L[d], load(prev, idx(d), j), df);
        store(mul(f, L[d]), lam, idx(d), j);
      }
      Value y = dot(L, k);
      storeGrad(mul(e, y), op.getValueGrad(), ValueRange{row, t, h, j});
      next[2 * K] = fma(y, vj, next[2 * K]);
      next[2 * K + 1] = df;
      return next;
    });
    Value de = add(sums[2 * K], dot(nu, k)), df = add(sums[2 * K + 1], dot(nu, nPrev));
    for (int64_t d = 0; d < K; ++d) {
      Value dq = mul(scale, fma(nCur[d], dDen, sums[d]));
      storeGrad(dq, op.getQueryGrad(), ValueRange{row, t, h, idx(d)});
      storeGrad(mul(e, add(sums[K + d], nu[d])), op.getKeyGrad(), ValueRange{row, t, h, idx(d)});
      store(mul(f, nu[d]), lam, idx(d), idx(V));
    }
    // f = exp(g + m_{t-1} - m_t), e = exp(i - m_t), m_t = max(g + m_{t-1}, i).
    Value fdf = mul(f, df), ede = mul(e, de);
    Value muCur = sub(sub(add(mu, dmOut), fdf), ede);
    Value forgetWins = arith::CmpFOp::create(b, arith::CmpFPredicate::OGE, decayed, input);
    Value toForget = select(forgetWins, muCur, cst(0.0));
    Value toInput = select(forgetWins, cst(0.0), muCur);
    Value dForget = add(fdf, toForget);
    if (Value dg = op.getLogDecayGrad())
      storeGrad(dForget, dg, ValueRange{row, t, h});
    storeGrad(add(ede, toInput), op.getInputGateGrad(), ValueRange{row, t, h});
    return dForget; // d m_{t-1}: m_{t-1} enters exactly where g does
  }

  /// The checkpoint interval: the config's, or at run time the candidate
  /// C in 16..256 that minimises ceil(L / C) + C, the states one sequence of
  /// the mean length L holds (C near sqrt(L)).
  Value checkpointInterval(LoweringConfigAttr config, Value positions, Value N) {
    if (config.getChunk() > 0)
      return idx(config.getChunk());
    Value mean = arith::CeilDivUIOp::create(
        b, positions, arith::MaxUIOp::create(b, N, idx(1)));
    mean = arith::MaxUIOp::create(b, mean, idx(1));
    Value best = idx(16), bestCost;
    for (int64_t c : {16, 32, 64, 128, 256}) {
      Value cost = addi(arith::CeilDivUIOp::create(b, mean, idx(c)), idx(c));
      if (!bestCost) {
        bestCost = cost;
        continue;
      }
      Value better = arith::CmpIOp::create(b, arith::CmpIPredicate::ult, cost, bestCost);
      best = select(better, idx(c), best);
      bestCost = select(better, cost, bestCost);
    }
    return best;
  }

  void emit(LoweringConfigAttr config) {
    Value zero = idx(0), one = idx(1);
    auto [H, group, T, N] = linearAttentionSizes(b, op.getQuery(), op.getValue(), op.getOffsets());
    scale = extendTo(b, state, op.getScale());
    Value rows = memref::DimOp::create(b, op.getQuery(), 0);
    Value positions = muli(rows, T);
    Value chunk = checkpointInterval(config, positions, N);
    // Checkpoint slots of every sequence, then C + 1 per sequence.
    Value checkpoints = addi(addi(arith::DivUIOp::create(b, positions, chunk), N), one);
    Value perSequence = addi(chunk, one);
    int64_t border = mlstm ? 1 : 0;
    scratch = allocateScratch(
        op,
        MemRefType::get({1, ShapedType::kDynamic, ShapedType::kDynamic, K + border, V + border},
                        state),
        [&](ImplicitLocOpBuilder &) {
          return SmallVector<Value>{H, addi(checkpoints, muli(N, perSequence))};
        });

    auto par = scf::ParallelOp::create(b, ValueRange{zero, zero}, ValueRange{H, N},
                                       ValueRange{one, one});
    par->setAttr(LoweringConfigAttr::getAttrName(), config);
    b.setInsertionPointToStart(par.getBody());
    h = par.getInductionVars()[0];
    n = par.getInductionVars()[1];
    hq = arith::DivUIOp::create(b, h, group);
    auto [seqRow, start, length] = sequenceRange(b, op.getOffsets(), n, T);
    row = seqRow;
    Value chunks = arith::CeilDivUIOp::create(b, length, chunk);
    // Checkpoint c of this sequence, its recomputed states and L.
    Value base = addi(arith::DivUIOp::create(b, addi(muli(row, T), start), chunk), n);
    auto checkpoint = [&](Value c) { return addi(base, c); };
    Value P = addi(checkpoints, muli(n, perSequence));
    Value lam = addi(P, chunk);

    // 1. Checkpoints: checkpoint c holds the state before step c C.
    emitInitialState(checkpoint(zero));
    loop(one, chunks, {}, [&](Value c, ValueRange) {
      Value before = subi(c, one);
      Value t0 = addi(start, muli(before, chunk));
      Value src = checkpoint(before), dst = checkpoint(c);
      loop(zero, chunk, {}, [&](Value tau, ValueRange) {
        Value first = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tau, zero);
        emitForwardStep(select(first, src, dst), dst, addi(t0, tau));
        return SmallVector<Value>{};
      });
      return SmallVector<Value>{};
    });

    // 2. The state gradient from the final one, then the chunks, last first.
    loop(zero, idx(V), {}, [&](Value j, ValueRange) {
      for (int64_t d = 0; d < K; ++d) {
        Value dT = op.getFinalGrad();
        store(dT ? loadAs(b, state, dT, ValueRange{n, h, idx(d), j}) : cst(0.0), lam, idx(d),
              j);
      }
      return SmallVector<Value>{};
    });
    // The mLSTM stabiliser's gradient travels back as a scalar: the loops carry it.
    SmallVector<Value> mu;
    if (mlstm) {
      for (int64_t d = 0; d < K; ++d) {
        Value dnT = op.getFinalNormalizerGrad();
        store(dnT ? loadAs(b, state, dnT, ValueRange{n, h, idx(d)}) : cst(0.0), lam, idx(d),
              idx(V));
      }
      Value dmT = op.getFinalStabilizerGrad();
      mu.push_back(dmT ? loadAs(b, state, dmT, ValueRange{n, h}) : cst(0.0));
    }
    mu = loop(zero, chunks, mu, [&](Value i, ValueRange carried) {
      Value c = subi(subi(chunks, one), i);
      Value c0 = muli(c, chunk);
      Value steps = arith::MinUIOp::create(b, chunk, subi(length, c0));
      Value t0 = addi(start, c0);
      // The state before step tau of the chunk: its checkpoint, or slot P + tau - 1.
      auto before = [&](Value tau) {
        Value first = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tau, zero);
        return select(first, checkpoint(c), subi(addi(P, tau), one));
      };
      loop(zero, steps, {}, [&](Value tau, ValueRange) {
        emitForwardStep(before(tau), addi(P, tau), addi(t0, tau));
        return SmallVector<Value>{};
      });
      return loop(zero, steps, carried, [&](Value back, ValueRange acc) {
        Value tau = subi(subi(steps, one), back);
        Value t = addi(t0, tau);
        if (mlstm)
          return SmallVector<Value>{
              emitMlstmAdjointStep(before(tau), addi(P, tau), lam, t, acc[0])};
        emitLinearAdjointStep(before(tau), addi(P, tau), lam, t);
        return SmallVector<Value>{};
      });
    });

    // 3. What reaches the initial states.
    if (Value dh0 = op.getInitialStateGrad())
      loop(zero, idx(V), {}, [&](Value j, ValueRange) {
        for (int64_t d = 0; d < K; ++d)
          storeGrad(load(lam, idx(d), j), dh0, ValueRange{n, h, idx(d), j});
        return SmallVector<Value>{};
      });
    if (Value dn0 = op.getInitialNormalizerGrad())
      for (int64_t d = 0; d < K; ++d)
        storeGrad(load(lam, idx(d), idx(V)), dn0, ValueRange{n, h, idx(d)});
    if (Value dm0 = op.getInitialStabilizerGrad())
      storeGrad(mu[0], dm0, ValueRange{n, h});
  }
};

struct MixerLowerLinearAttentionAdjoint
    : public mixer::impl::MixerLowerLinearAttentionAdjointBase<
          MixerLowerLinearAttentionAdjoint> {
  void runOnOperation() override {
    SmallVector<LinearAttentionAdjointOp> ops;
    getOperation().walk([&](LinearAttentionAdjointOp op) { ops.push_back(op); });
    for (LinearAttentionAdjointOp op : ops) {
      LoweringConfigAttr config = LoweringConfigAttr::of(op);
      if (!config || config.getKernel() != KernelKind::Checkpointed) {
        op.emitOpError("mixer-lower-linear-attention-adjoint needs a mixer.lowering_config "
                       "with kernel = checkpointed; run mixer-select-lowering-config first");
        return signalPassFailure();
      }
      ImplicitLocOpBuilder b(op.getLoc(), op);
      AdjointEmitter(b, op).emit(config);
      op.erase();
    }
  }
};
} // namespace
