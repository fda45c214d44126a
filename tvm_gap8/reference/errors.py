"""What the reference cannot evaluate (the bottom of the reference package: imports nothing of
ours, so that every reference module may raise it)."""


class UnsupportedOpError(ValueError):
    """The reference cannot evaluate ``node`` (its op type, or an attribute value ``detail``
    names). ``--check`` reports it as "not checked" (``check.check_int8``)."""

    def __init__(self, node, detail: str = ""):
        self.node, self.op_type, self.detail = node.name, node.op_type, detail
        super().__init__(f"node {node.name!r}: op type {node.op_type} is not supported by the "
                         "reference" + (f" ({detail})" if detail else ""))
