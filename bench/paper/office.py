"""The LibreOffice workload of bench/paper (runs inside VEs of the libreoffice app).

  python3 office.py make-documents DIR
      Writes DIR/report.odt (about 200 KB) and DIR/references.odt (about 55 KB): deterministic
      text (a fixed seed) as HTML, converted by LibreOffice itself; the paragraph counts are
      scaled until each file is within 10 % of its size.
  python3 office.py edit HOST PORT DIR
      The driver (Python-UNO): connects to a LibreOffice listening on HOST:PORT, opens
      DIR/report.odt and DIR/references.odt, copies all of the references (select all, copy)
      to the end of the report (paste), closes the references without saving, saves and closes
      the report, and ends that LibreOffice. Prints a JSON line: the report's size before and
      after.
"""
import gc
import json
import os
import random
import subprocess
import sys
import time

TARGETS = {"report": 200_000, "references": 55_000}


def words(rng, n):
    syll = ["ka", "ro", "mi", "te", "lun", "dra", "vo", "sei", "pa", "ne", "qui", "sto", "ar", "ul"]
    return " ".join("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(n))


def html(kind, paragraphs):
    rng = random.Random(kind)
    out = [f"<html><head><meta charset='utf-8'><title>{kind}</title></head><body>"]
    if kind == "report":
        out.append("<h1>Report</h1>")
        for i in range(paragraphs):
            if i % 12 == 0:
                out.append(f"<h2>Section {i // 12 + 1}: {words(rng, 4)}</h2>")
            out.append(f"<p>{words(rng, rng.randint(40, 90))}.</p>")
    else:
        out.append("<h1>References</h1>")
        for i in range(paragraphs):
            out.append(
                f"<p>[{i + 1}] {words(rng, 2).title()}, {words(rng, 1).title()[0]}. "
                f"({1990 + rng.randint(0, 35)}). {words(rng, rng.randint(6, 14)).capitalize()}. "
                f"<i>{words(rng, 3).title()}</i>, {rng.randint(1, 60)}({rng.randint(1, 12)}), "
                f"{rng.randint(1, 400)}-{rng.randint(401, 900)}.</p>"
            )
    out.append("</body></html>")
    return "\n".join(out)


def make_documents(d):
    for kind, target in TARGETS.items():
        paragraphs = 100
        for _ in range(6):
            src = f"/tmp/{kind}.html"
            with open(src, "w") as f:
                f.write(html(kind, paragraphs))
            subprocess.run(
                ["soffice", "--headless", "--convert-to", "odt", "--outdir", d, src],
                check=True, stdout=subprocess.DEVNULL,
            )
            size = os.path.getsize(os.path.join(d, f"{kind}.odt"))
            if abs(size - target) <= target // 10:
                break
            paragraphs = max(1, round(paragraphs * target / size))
        print(f"{kind}.odt: {size} bytes, {paragraphs} paragraphs")
        if abs(size - target) > target // 10:
            sys.exit(f"office.py: {kind}.odt is {size} bytes, not within 10 % of {target}")


def edit(host, port, d):
    import uno
    from com.sun.star.beans import PropertyValue
    
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    url = f"uno:socket,host={host},port={port};urp;StarOffice.ComponentContext"
    for attempt in range(300):  # LibreOffice may still be starting
        try:
            ctx = resolver.resolve(url)
            break
        except Exception:
            if attempt == 299:
                raise
            time.sleep(0.1)
    desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
    hidden = PropertyValue()
    hidden.Name, hidden.Value = "Hidden", True
    report_path = os.path.join(d, "report.odt")
    before = os.path.getsize(report_path) if os.path.exists(report_path) else None
    report = desktop.loadComponentFromURL(uno.systemPathToFileUrl(report_path), "_blank", 0, (hidden,))
    refs = desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(os.path.join(d, "references.odt")), "_blank", 0, (hidden,))
    if report is None or refs is None:
        sys.exit("office.py: LibreOffice could not open the documents")
    # Copy as a user would: select all of the references, copy, go to the end of the report,
    # paste (a handful of UNO calls; paragraph by paragraph would be thousands of round trips).
    all_refs = refs.getText().createTextCursor()
    all_refs.gotoStart(False)
    all_refs.gotoEnd(True)
    refs.getCurrentController().select(all_refs)
    clip = refs.getCurrentController().getTransferable()
    end = report.getText().createTextCursor()
    end.gotoEnd(False)
    report.getCurrentController().select(end)
    report.getCurrentController().insertTransferable(clip)
    # Release the clipboard content now: released after LibreOffice ended, it aborts it.
    del clip
    gc.collect()
    refs.close(True)  # without saving
    report.store()
    after = os.path.getsize(report_path)
    report.close(True)
    try:
        desktop.terminate()
    except Exception:
        pass  # the connection drops while LibreOffice ends
    print(json.dumps({"report_bytes_before": before, "report_bytes_after": after}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-documents":
        make_documents(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "edit":
        edit(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
