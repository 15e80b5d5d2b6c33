"""The work order itself, shared by the stream tier (which opens and escalates work orders)
and the command center (where people act on them): the state machine of the 数字城管 and
12345 loops, SLA clocks over a working calendar, routing and priority.

Pure logic over plain data and config; nothing here does I/O except :mod:`.store`, the SQL
both tiers write work orders and their audit trail with.
"""
