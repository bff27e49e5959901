"""KServe v2 / Open Inference Protocol front ends of the model server.

``routes.router`` serves REST under ``/v2`` and ``grpc_server.create_grpc_server`` builds the
``inference.GRPCInferenceService`` server; both are thin layers over ``handler`` (each task's
tensors, validation, inference through the ``InferenceService``), with ``tensors`` converting
JSON, binary and gRPC tensor data to numpy and back, and ``protocol`` holding the bodies and
request parameter models.
"""
