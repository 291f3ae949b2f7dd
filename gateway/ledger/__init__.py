"""The ledger of decided calls and what is made of it: the writer on the paint path, who may see
whose calls, the report for heads and the morning digest."""
