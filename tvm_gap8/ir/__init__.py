"""The bottom floor: the words every layer shares (``vocab``: attribute keys, buffer roles,
layouts), walking lowered TIR (``tirwalk``), small Relax helpers (``irutil``), the float ``exp``
lowering (``float_exp``) and the memory placement record (``placement``)."""
