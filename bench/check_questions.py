"""Check bench/questions.jsonl: valid JSON, keys, paths exist, answers verbatim."""
import collections
import json
import os
import sys

CORPUS = os.environ.get("CORPUS", "/work/shared/corpus/python-docs")
PATH = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "questions.jsonl")

bad = 0
seen = set()
per_file = collections.Counter()
with open(PATH, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            print(f"{n}: bad JSON: {e}"); bad += 1; continue
        if set(obj) != {"question", "path", "answer"}:
            print(f"{n}: keys {sorted(obj)}"); bad += 1; continue
        p = os.path.join(CORPUS, obj["path"])
        if not os.path.isfile(p):
            print(f"{n}: no such file {obj['path']}"); bad += 1; continue
        text = open(p, encoding="utf-8").read()
        a = obj["answer"]
        if a not in text:
            print(f"{n}: answer not in {obj['path']}: {a!r}"); bad += 1
        elif "\n" in a:
            print(f"{n}: answer spans lines: {a!r}"); bad += 1
        q = obj["question"].strip().lower()
        if q in seen:
            print(f"{n}: duplicate question: {obj['question']!r}"); bad += 1
        seen.add(q)
        per_file[obj["path"]] += 1

files = sorted(os.path.relpath(os.path.join(d, x), CORPUS)
               for d, _, fs in os.walk(CORPUS) for x in fs if x.endswith(".rst"))
for fp in files:
    print(f"{per_file.get(fp, 0):4d}  {fp}")
missing = [fp for fp in files if per_file.get(fp, 0) < 2]
print(f"{sum(per_file.values())} questions, {bad} bad, files under 2: {missing}")
sys.exit(1 if bad else 0)
