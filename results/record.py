"""One result as the tables see it: results/records.py reads them from the results.json files; identity, cells,
few-shot and protocol tables take them."""
from collections import namedtuple

# settings: identity.frozen(identity.settings_of(results.json)); setting: the row label of a setting that
# another result of its cell does not share (identity.split_settings), "" otherwise.
# queries: the black-box trainers' training image queries (results.json black_box), None for the others.
Record = namedtuple("Record", "method variant dataset classes backbone shots seed value path test_selected "
                              "settings setting queries", defaults=(False, (), "", None))
