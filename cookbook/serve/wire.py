"""The protobuf half of the Tinker wire format, server side.

The SDK sends `forward_backward` requests as `tinker.proto` `ForwardBackwardRequest` messages and
reads `ForwardBackwardOutput` and `SampleResponse` results as protobuf (everything else is
JSON). This module is the inverse of the SDK's `tinker/proto/request_conv.py` and
`response_conv.py`, written against the message definitions the SDK ships
(`tinker.proto.tinker_public_pb2`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tinker import types
from tinker.proto import tinker_public_pb2 as pb

PROTOBUF = "application/x-protobuf"

_DTYPES: dict[int, tuple[types.TensorDtype, np.dtype]] = {
    pb.DTYPE_FLOAT32: ("float32", np.dtype(np.float32)),
    pb.DTYPE_INT64: ("int64", np.dtype(np.int64)),
    pb.DTYPE_INT32: ("int64", np.dtype(np.int32)),
}


class WireError(ValueError):
    """A request body that does not decode (HTTP 400)."""


@dataclass
class ForwardBackwardCall:
    """A decoded `/api/v1/forward_backward` request."""

    model_id: str
    seq_id: int
    loss_fn: str
    loss_fn_config: dict[str, float | str] | None
    forward_only: bool
    data: list[types.Datum]


def decode_forward_backward(body: bytes) -> ForwardBackwardCall:
    """The request the SDK serialised in `forward_backward_request_to_proto`."""
    msg = pb.ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise WireError(f"forward_backward body is not a ForwardBackwardRequest: {exc}") from None
    config: dict[str, float | str] = {}
    for key, value in msg.loss_fn_config_v2.items():
        config[key] = value.text if value.WhichOneof("value") == "text" else value.number
    for key, number in msg.loss_fn_config.items():
        config.setdefault(key, number)
    data = [_decode_datum(d, i) for i, d in enumerate(msg.data)]
    return ForwardBackwardCall(
        model_id=msg.model_id,
        seq_id=msg.seq_id,
        loss_fn=msg.loss_fn,
        loss_fn_config=config or None,
        forward_only=msg.forward_only,
        data=data,
    )


def _decode_datum(msg: pb.Datum, index: int) -> types.Datum:
    tokens: list[int] = []
    for chunk in msg.model_input:
        kind = chunk.WhichOneof("chunk")
        if kind != "encoded_text":
            raise WireError(
                f"datum {index}: model_input has a {kind} chunk; this server takes token chunks"
            )
        tokens.extend(np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32).tolist())
    inputs = {name: _decode_tensor(t, index, name) for name, t in msg.loss_fn_inputs.items()}
    return types.Datum(model_input=types.ModelInput.from_ints(tokens), loss_fn_inputs=inputs)


def _decode_tensor(msg: pb.Tensor, index: int, name: str) -> types.TensorData:
    if msg.dtype not in _DTYPES:
        raise WireError(f"datum {index}: loss_fn_inputs[{name!r}] has unknown dtype {msg.dtype}")
    dtype, np_dtype = _DTYPES[msg.dtype]
    shape = list(msg.shape)
    try:
        if msg.WhichOneof("encoding") == "sparse_csr":
            csr = msg.sparse_csr
            return types.TensorData(
                data=np.frombuffer(csr.values, dtype=np_dtype).copy(),
                dtype=dtype,
                shape=shape,
                sparse_crow_indices=np.frombuffer(csr.crow_indices, np.int64).tolist(),
                sparse_col_indices=np.frombuffer(csr.col_indices, np.int64).tolist(),
            )
        values = np.frombuffer(msg.dense, dtype=np_dtype).copy()
        if shape and math.prod(shape) != values.size:
            raise WireError(
                f"datum {index}: loss_fn_inputs[{name!r}] has {values.size} values for shape "
                f"{shape}"
            )
        return types.TensorData(data=values.reshape(shape or [values.size]), dtype=dtype)
    except ValueError as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"datum {index}: loss_fn_inputs[{name!r}] does not decode: {exc}") from None


def encode_forward_backward_output(output: types.ForwardBackwardOutput) -> bytes:
    """A `ForwardBackwardOutput` as the SDK's `deserialize_forward_backward_output` reads it:
    one `ArrayRecord` whose fields are batched per-datum tensors."""
    msg = pb.ForwardBackwardOutput(loss_fn_output_type=output.loss_fn_output_type)
    for key, value in output.metrics.items():
        msg.metrics[key] = float(value)
    outputs = output.loss_fn_outputs
    record = msg.loss_fn_outputs.add(num_datums=len(outputs))
    names = list(outputs[0]) if outputs else []
    for name in names:
        arrays = [np.asarray(o[name].to_numpy()) for o in outputs]
        first = arrays[0]
        is_float = first.dtype.kind == "f"
        np_dtype = np.dtype(np.float32) if is_float else np.dtype(np.int64)
        flat = [np.ascontiguousarray(a, dtype=np_dtype).reshape(-1) for a in arrays]
        sizes = np.cumsum([0] + [a.size * np_dtype.itemsize for a in flat], dtype=np.int64)
        batched = record.fields[name]
        batched.data = b"".join(a.tobytes() for a in flat)
        batched.offsets = sizes.tobytes()
        batched.dtype = pb.DTYPE_FLOAT32 if is_float else pb.DTYPE_INT64
        batched.trailing_shape.extend(list(first.shape[1:]))
    return msg.SerializeToString()


def encode_sample_response(response: types.SampleResponse) -> bytes:
    """A `SampleResponse` as the SDK's `deserialize_sample_response` reads it."""
    msg = pb.SampleResponse(prompt_cache_hit_tokens=response.prompt_cache_hit_tokens)
    for seq in response.sequences:
        out = msg.sequences.add(
            stop_reason=pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH,
            tokens=np.asarray(seq.tokens, dtype=np.int32).tobytes(),
        )
        if seq.logprobs is not None:
            out.logprobs = np.asarray(seq.logprobs, dtype=np.float32).tobytes()
    if response.prompt_logprobs_np is not None:
        msg.prompt_logprobs = np.asarray(response.prompt_logprobs_np, np.float32).tobytes()
    topk = response.topk_prompt_logprobs_np
    if topk is not None:
        n, k = topk.token_ids.shape
        msg.topk_prompt_logprobs.token_ids = np.asarray(topk.token_ids, np.int32).tobytes()
        msg.topk_prompt_logprobs.logprobs = np.asarray(topk.logprobs, np.float32).tobytes()
        msg.topk_prompt_logprobs.k = k
        msg.topk_prompt_logprobs.length = n
    return msg.SerializeToString()
