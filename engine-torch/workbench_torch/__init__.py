"""lora-workbench's PyTorch engine (../shared/design/ENGINES.md): the TrainJob contract on transformers + PEFT."""
