"""Logits in chunks (persona_circuits.measure.logits)."""

import pytest
import torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_logits_shared_across_groups_equal_one_call_per_group(dtype):
    """target_logprobs computes LOGIT_ROWS rows of logits per product but reduces each group of LOGIT_CHUNK rows
    on its own: bit for bit the result of one call per group (rows=chunk), a last one-row group included."""
    from persona_circuits.measure.logits import LOGIT_CHUNK, target_logprobs
    from persona_circuits.model.upcast import Bf16ViaFloat32

    g = torch.Generator().manual_seed(3)
    head = torch.nn.Linear(48, 3001, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.randn(3001, 48, generator=g))
    head = head.to(dtype)
    calls = []

    def unembed(h):
        calls.append(h.shape[0])
        return head(h)

    for n in (1, 2, 63, 64, 65, 129, 256, 257, 300, 321, 513):
        hidden = torch.randn(n, 48, generator=g).to(dtype)
        targets = torch.randint(0, 3001, (n,), generator=g)
        with torch.no_grad(), Bf16ViaFloat32():
            calls.clear()
            one = target_logprobs(unembed, hidden, targets, rows=LOGIT_CHUNK)
            per_group = list(calls)
            calls.clear()
            shared = target_logprobs(unembed, hidden, targets, rows=4 * LOGIT_CHUNK)
        assert torch.equal(one, shared), n
        assert per_group == [min(LOGIT_CHUNK, n - i) for i in range(0, n, LOGIT_CHUNK)]
        assert sum(calls) == n and max(calls) <= 4 * LOGIT_CHUNK
        assert len(calls) <= len(per_group) and (n < 2 * LOGIT_CHUNK or len(calls) < len(per_group))
        assert (n % LOGIT_CHUNK != 1) or calls[-1] == 1  # a last one-row group is unembedded alone
        with torch.no_grad(), Bf16ViaFloat32():
            ref = torch.log_softmax(head(hidden).float(), -1).gather(-1, targets[:, None]).squeeze(-1)
        torch.testing.assert_close(shared, ref, rtol=1e-5, atol=1e-5)
