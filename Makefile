# gpen-cli developer tasks. `make test` installs into .venv first when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format demo bench clean

# pip's own log is hundreds of lines; `make install PIP_QUIET=` shows it all.
PIP_QUIET ?= --quiet --disable-pip-version-check

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "make install: gpen-cli and its test, Ray and ONNX extras into $(VENV) (a few minutes the first time)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install $(PIP_QUIET) --upgrade pip
	@$(BIN)/python -m pip install $(PIP_QUIET) -e ".[test,ray,onnx]"
	@touch $(STAMP)
	@echo "make install: done; the command is $(BIN)/gpen"

# pytest exits 5 when it collected nothing: say so, and fail.
test: $(STAMP)
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

# The suite without the slow and Ray tests: for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not ray"

lint: $(STAMP)
	$(BIN)/ruff check gpen_cli tests scripts
	$(BIN)/ruff format --check gpen_cli tests scripts

format: $(STAMP)
	$(BIN)/ruff format gpen_cli tests scripts
	$(BIN)/ruff check --fix gpen_cli tests scripts

# Checks the install, then restores a sample photo that ships with scikit-image.
demo: $(STAMP)
	$(BIN)/gpen doctor
	mkdir -p demo
	$(BIN)/python -c "import skimage.data, cv2; cv2.imwrite('demo/astronaut.png', skimage.data.astronaut()[:, :, ::-1])"
	$(BIN)/gpen restore demo/astronaut.png -o demo/restored --compare --overwrite

bench: $(STAMP)
	$(BIN)/gpen bench

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache build *.egg-info
